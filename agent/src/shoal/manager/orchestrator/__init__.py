"""The orchestrator (leader only): reconcile loop → allocator → scheduler → one store batch."""

from shoal.manager.orchestrator.loop import Orchestrator

__all__ = ["Orchestrator"]
