"""shoal.manager"""
