"""softphone_bridge"""
