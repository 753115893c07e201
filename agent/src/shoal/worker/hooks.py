"""The seam between running tasks and the node's networking (typed, and passed at construction).

The executor calls the hooks around a networked task's start and removal; the task loop hands the
managers' network state to the node's network. Networking starts later than the executor (it needs
the node's underlay address, known once the node is in a swarm) and stops on leave, so both are
given a `NetworkSlot` at construction, and the agent attaches and detaches the real `NetAgent`.
"""

from __future__ import annotations

from typing import Any, Protocol


class NetworkHooks(Protocol):
    async def before_start(self, task: dict[str, Any]) -> None: ...

    async def after_start(self, task: dict[str, Any]) -> None: ...

    async def before_remove(self, task_id: str) -> None: ...


class NodeNetwork(NetworkHooks, Protocol):
    async def adopt(self, assigned: dict[str, dict[str, Any]], states: dict[str, str]) -> None: ...

    async def apply(self, state: dict[str, Any], force_task: str | None = None) -> None: ...

    async def cleanup(self) -> None: ...

    def set_data_path_port(self, port: Any) -> None: ...


class NetworkSlot:
    """A NodeNetwork that forwards to the attached one, and does nothing while none is."""

    def __init__(self) -> None:
        self.current: NodeNetwork | None = None
        self.data_path_port: Any = None  # the last the managers named, for a network attached later

    def attach(self, network: NodeNetwork) -> None:
        self.current = network
        if self.data_path_port is not None:
            network.set_data_path_port(self.data_path_port)

    @property
    def attached(self) -> bool:
        """Whether a network is attached: the state `apply` is given programs something."""
        return self.current is not None

    def set_data_path_port(self, port: Any) -> None:
        self.data_path_port = port
        if self.current is not None:
            self.current.set_data_path_port(port)

    async def detach(self) -> None:
        """Clean the attached network up (links, namespaces, rules) and forget it."""
        network, self.current = self.current, None
        if network is not None:
            await network.cleanup()

    async def before_start(self, task: dict[str, Any]) -> None:
        if self.current is not None:
            await self.current.before_start(task)

    async def after_start(self, task: dict[str, Any]) -> None:
        if self.current is not None:
            await self.current.after_start(task)

    async def before_remove(self, task_id: str) -> None:
        if self.current is not None:
            await self.current.before_remove(task_id)

    async def adopt(self, assigned: dict[str, dict[str, Any]], states: dict[str, str]) -> None:
        if self.current is not None:
            await self.current.adopt(assigned, states)

    async def apply(self, state: dict[str, Any], force_task: str | None = None) -> None:
        if self.current is not None:
            await self.current.apply(state, force_task)
