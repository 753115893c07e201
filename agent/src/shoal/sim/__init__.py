"""Simulated nodes for scale tests: `python -m shoal.sim` runs N of them in one process."""
