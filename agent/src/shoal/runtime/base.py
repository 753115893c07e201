"""What every task driver shares: handles, exit status, errors and the `Driver` protocol."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from shoal.errors import NotFound, ShoalError, SpecError

TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LOST_EXIT_CODE = 255  # neither the task nor its monitor left an exit code (monitor killed, node restarted)


def check_id(task_id: Any) -> str:
    """A task ID that is safe as a directory name and a runtime container ID."""
    if not isinstance(task_id, str) or not TASK_ID.match(task_id):
        raise SpecError(f"invalid task ID {task_id!r}")
    return task_id


class RuntimeDriverError(ShoalError, RuntimeError):
    """A task cannot be prepared or started; `message` is what the task status shows. At the API
    a 500 (Docker's errdefs.System: the node failed, not the request) unless a subclass says
    otherwise; still a RuntimeError for callers that catch it as one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class NoSuchImage(RuntimeDriverError, NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such image: {name}")
        self.name = name


class TaskRejected(RuntimeDriverError):
    """The node cannot run the task as specified (e.g. limits without a usable cgroup)."""


class NoSuchTask(RuntimeDriverError, NotFound):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"No such task: {task_id}")
        self.task_id = task_id


@dataclass(frozen=True)
class TaskHandle:
    """A started task. `pid` is the task's main process; `netns` names its network namespace
    (an `ip netns` name, bound at `netns_path`) for the networking code to attach interfaces."""

    task_id: str
    pid: int
    pid_start: int  # start time in clock ticks since boot: with boot_id, tells a reused pid apart
    shim_pid: int
    netns: str
    netns_path: str
    started_at: str  # RFC 3339

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int  # 128 + signal when killed by a signal, as docker reports it
    signal: int | None = None
    oom_killed: bool = False
    error: str | None = None  # the task never ran (bad command, ...) or its status was lost
    finished_at: str = ""

    @property
    def message(self) -> str:
        """Docker's `Status.Err` of a task: "" after a clean exit."""
        if self.error:
            return self.error
        return "" if self.exit_code == 0 else f"task: non-zero exit ({self.exit_code})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Driver(Protocol):
    """A task runtime. `task` is a Docker Engine API Task (dict); drivers read `ID`, `ServiceID`,
    `Slot`, `Spec.ContainerSpec` and `Spec.Resources.Limits`. Methods are blocking; call them
    from a worker thread. Every method is idempotent for a given task id."""

    name: str

    def prepare(self, task: Mapping[str, Any]) -> None: ...

    def start(self, task: Mapping[str, Any]) -> TaskHandle: ...

    def poll(self, task_id: str) -> ExitStatus | None: ...

    def wait(self, task_id: str, timeout: float | None = None) -> ExitStatus | None: ...

    def stop(self, task_id: str, grace: float | None = None) -> ExitStatus | None: ...

    def kill(self, task_id: str, sig: int = 9) -> None: ...

    def remove(self, task_id: str) -> None: ...

    def logs(self, task_id: str, tail: int | None = None, follow: bool = False) -> Iterator[bytes]: ...

    def list_running(self) -> list[TaskHandle]: ...

    def adopt(self) -> list[TaskHandle]: ...

    def netns_path(self, task_id: str) -> str:
        """Where the task's network namespace is bound (the node's networking attaches it there)."""
        ...

    def exec_command(self, task_id: str, argv: list[str], tty: bool = False) -> tuple[list[str], dict[str, str]]:
        """(argv, env) that runs `argv` in the running task (`shoal exec`)."""
        ...


@runtime_checkable
class LoopDriver(Protocol):
    """A driver whose calls never block (`sim`): the executor calls it on the event loop instead of
    in a worker thread, and awaits `ready(task_id)` after `start` before it reports the task running."""

    blocking: bool

    async def ready(self, task_id: str) -> None: ...
