"""shoal.store"""
