"""shoal.model"""
