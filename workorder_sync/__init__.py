"""workorder_sync"""
