"""shoal.worker"""
