"""cti/stack"""
