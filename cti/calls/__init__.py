"""cti/calls"""
