"""shoal: Docker Swarm mode rebuilt in Python (agent, CLI and libraries)."""

__version__ = "0.1.0"
