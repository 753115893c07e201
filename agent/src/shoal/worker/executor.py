"""The worker's task executor: makes the local runtime match the node's assignments.

Tasks keep running whatever happens to the managers (seed §10): only an assignment with a desired
state past running stops a task. Status changes are queued and sent in batches by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from shoal.model.ids import now_rfc3339
from shoal.model.task import RUN_DESIRED, state_rank
from shoal.runtime.base import (
    Driver,
    ExitStatus,
    LoopDriver,
    NoSuchImage,
    NoSuchTask,
    RuntimeDriverError,
    TaskRejected,
)
from shoal.runtime.images.registry import ImageFormatError, RegistryError
from shoal.worker.health import HEALTHY, UNHEALTHY, HealthMonitor
from shoal.worker.hooks import NetworkHooks

log = logging.getLogger("shoal.executor")

STOPPING = ("shutdown", "remove", "orphaned")
UP = ("starting", "running")  # the container runs (STARTING: its health check has not passed yet)
UNHEALTHY_ERR = "dockerexec: unhealthy container"  # SwarmKit's ErrContainerUnhealthy
# Between an unhealthy task leaving its backends and its stop: Docker's controller sleeps its
# defaultGossipConvergeDelay (2 s) after deactivating the service binding, for the same reason
DRAIN_DELAY = 2.0


class Executor:
    def __init__(self, driver: Driver, hooks: NetworkHooks | None = None) -> None:
        self.driver = driver
        self.assigned: dict[str, dict[str, Any]] = {}
        self.state: dict[str, str] = {}  # what this node last reported per task
        self.busy: set[str] = set()  # a start or stop is in flight
        self.stop_requested: set[str] = set()
        self.reports: list[dict[str, Any]] = []
        self.wakeup = asyncio.Event()
        self.service_names: dict[str, str] = {}
        self.hooks = hooks  # networking: before_start / after_start / before_remove
        # running task -> a pidfd of its monitor (conmon), readable the moment the task ended: exits are
        # noticed at once, without re-reading every task's status files several times a second
        self.exit_fds: dict[str, int] = {}
        # observers of task state changes (task, state, report fields): the node's container events
        self.listeners: list[Callable[[dict[str, Any], str, dict[str, Any]], None]] = []
        self.removed: dict[str, dict[str, Any]] = {}
        self.health = HealthMonitor(driver, self._health_changed)  # worker/health.py
        self.drain_delay = DRAIN_DELAY
        # task -> pid of a task found running at an agent restart, until its first assignment says
        # what the store holds of it (a report the previous agent queued may never have arrived)
        self.adopted: dict[str, int] = {}

    def task_name(self, task: dict[str, Any], full: bool = False) -> str:
        name = self.service_names.get(task["ServiceID"], task["ServiceID"][:12])
        unit = task.get("Slot") or task.get("NodeID")
        return f"{name}.{unit}.{task['ID']}" if full else f"{name}.{unit}"

    def resolve(self, ref: str) -> dict[str, Any]:
        """A local task by `web.1`, full name `web.1.<id>`, or ID prefix (as docker ps names)."""
        local = [t for tid, t in self.assigned.items() if tid in self.state]
        for task in local:
            if ref in (task["ID"], self.task_name(task, full=True)):
                return task
        by_name = [t for t in local if self.task_name(t) == ref and self.state.get(t["ID"]) == "running"]
        by_prefix = [t for t in local if t["ID"].startswith(ref)]
        for found in (by_name, by_prefix):
            if len(found) == 1:
                return found[0]
        raise KeyError(f"No such task: {ref}")

    # ---- restart of the agent: running tasks are adopted, never restarted
    async def adopt(self) -> None:
        handles = await self._call(self.driver.adopt)
        for handle in handles:
            self.state[handle.task_id] = "running"
            self.adopted[handle.task_id] = handle.pid
        if handles:
            log.info("adopted %d running tasks", len(handles))

    def report(self, task_id: str, state: str, message: str, **extra: Any) -> None:
        self.state[task_id] = state
        if state not in UP:
            self.health.unwatch(task_id)
        self.reports.append({"ID": task_id, "State": state, "Message": message, "Timestamp": now_rfc3339(), **extra})
        self.wakeup.set()
        self._notify(self.assigned.get(task_id) or self.removed.get(task_id) or {"ID": task_id}, state, extra)

    def _notify(self, task: dict[str, Any], state: str, extra: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(task, state, extra)
            except Exception:  # an observer never breaks the task's life
                log.exception("task state listener failed")

    def take_reports(self) -> list[dict[str, Any]]:
        out, self.reports = self.reports, []
        return out

    def requeue(self, reports: list[dict[str, Any]]) -> None:
        self.reports = reports + self.reports

    # ---- reconcile with assignments
    def apply(self, tasks: list[dict[str, Any]], service_names: Mapping[str, str] | None = None) -> None:
        assigned = {t["ID"]: t for t in tasks}
        # the last copy of a task deleted from the store: its stop is still told to the listeners
        self.removed.update((tid, t) for tid, t in self.assigned.items() if tid not in assigned and tid in self.state)
        self.assigned = assigned
        if service_names is not None:
            # a removed service's name stays while its tasks are still here: their die events name it
            kept = {t.get("ServiceID") for t in (*self.assigned.values(), *self.removed.values())}
            old = {sid: name for sid, name in self.service_names.items() if sid in kept}
            self.service_names = {**old, **service_names}
        for task in tasks:
            tid = task["ID"]
            if tid in self.busy:
                continue
            known = self.state.get(tid)
            desired = task["DesiredState"]
            if desired in RUN_DESIRED and known is None and task["Status"]["State"] in ("assigned", "accepted"):
                self._spawn(self._start(task))
            elif desired in STOPPING and known in ("running", "starting"):
                self._spawn(self._stop(task))
            elif known is None and desired in STOPPING and task["Status"]["State"] in ("assigned", "accepted"):
                self.report(tid, "shutdown", "shutdown before start")
            elif known is None and desired in RUN_DESIRED and task["Status"]["State"] in ("starting", "running"):
                self._spawn(self._reclaim(task))  # the agent restarted and the task was not adopted
            elif known in UP and desired in RUN_DESIRED:
                # checks resume after an agent restart (no-op when already watched)
                self._adopt_health(task, first=tid in self.adopted)
                self._confirm_adopted(task)
        for tid in list(self.state):
            if tid not in self.assigned and tid not in self.busy:
                self._spawn(self._forget(tid))  # deleted from the store: stop if needed and clean up

    def _spawn(self, coro: Any) -> None:
        asyncio.get_running_loop().create_task(coro)

    async def _start(self, task: dict[str, Any]) -> None:
        tid = task["ID"]
        self.busy.add(tid)
        try:
            self.report(tid, "accepted", "accepted")
            if isinstance(self.driver, LoopDriver):
                handle = await self._start_on_loop(task)
            elif self.hooks is not None and _networked(task):
                await asyncio.to_thread(self.driver.prepare, task)
                await self.hooks.before_start(task)
                self.report(tid, "starting", "starting")
                handle = await asyncio.to_thread(self.driver.start, task)
                await self.hooks.after_start(task)
            else:
                handle = await asyncio.to_thread(self._prepare_and_start, task, asyncio.get_running_loop())
            self._report_up(tid, handle.pid)
            self.watch_exit(tid)
        except (NoSuchImage, TaskRejected, RegistryError, ImageFormatError) as exc:
            # a pull that failed: the registry's reason (`No such image`, `unauthorized`, ...)
            self.report(tid, "rejected", "rejected", Err=exc.message)
        except RuntimeDriverError as exc:
            self.report(tid, "failed", "starting container failed", Err=exc.message, ExitCode=127)
        except Exception as exc:
            log.exception("starting task %s failed", tid)
            self.report(tid, "rejected", "rejected", Err=f"{exc.__class__.__name__}: {exc}")
        finally:
            self.busy.discard(tid)
            self._recheck(tid)

    async def _start_on_loop(self, task: dict[str, Any]) -> Any:
        """The same steps for a driver that never blocks, without a thread hop per call."""
        hooks = self.hooks if _networked(task) else None
        self.driver.prepare(task)
        if hooks is not None:
            await hooks.before_start(task)
        self.report(task["ID"], "starting", "starting")
        handle = self.driver.start(task)
        await self.driver.ready(task["ID"])
        if hooks is not None:
            await hooks.after_start(task)
        return handle

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A driver call: in a worker thread (runc, the disk block), or straight on the loop for a
        driver that never blocks."""
        if getattr(self.driver, "blocking", True):
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    def _prepare_and_start(self, task: dict[str, Any], loop: asyncio.AbstractEventLoop) -> Any:
        """prepare + start in one trip to a worker thread (a task without network hooks): each task
        starts as soon as it is prepared, instead of its start queueing behind every other task's
        prepare when many arrive at once (100 replicas: the first RUNNING came after all prepares)."""
        self.driver.prepare(task)
        loop.call_soon_threadsafe(self.report, task["ID"], "starting", "starting")  # before "running"
        return self.driver.start(task)

    async def _reclaim(self, task: dict[str, Any]) -> None:
        """A task the store has as starting or running that this agent did not adopt: it ended
        while no agent ran (its exit code is in the driver's record), its start was cut short by
        the restart (the driver finishes it), or its record is gone."""
        tid = task["ID"]
        self.busy.add(tid)
        try:
            try:
                status = await self._call(self.driver.poll, tid)
            except NoSuchTask:
                self.report(tid, "failed", "lost", Err="task: not found on this node after the agent restarted")
                return
            if status is None:
                handle = await self._call(self.driver.start, task)
                self._report_up(tid, handle.pid)
                self.watch_exit(tid)
            else:
                self.state[tid] = "running"
                self.busy.discard(tid)
                self.check_exits([tid])  # reports complete or failed with the exit code
        except RuntimeDriverError as exc:
            self.report(tid, "failed", "starting container failed", Err=exc.message, ExitCode=127)
        except Exception as exc:
            log.exception("reclaiming task %s failed", tid)
            self.report(tid, "failed", "lost", Err=f"{exc.__class__.__name__}: {exc}")
        finally:
            self.busy.discard(tid)
            self._recheck(tid)

    def _recheck(self, tid: str) -> None:
        """Assignments that changed while the task was starting (removed, or told to stop) would
        otherwise wait for the next change to reach this node: act on them now."""
        task = self.assigned.get(tid)
        if task is None and tid in self.state:
            self._spawn(self._forget(tid))
        elif task is not None and task["DesiredState"] in STOPPING and self.state.get(tid) in ("running", "starting"):
            self._spawn(self._stop(task))

    async def _stop(self, task: dict[str, Any]) -> None:
        tid = task["ID"]
        self.busy.add(tid)
        self.stop_requested.add(tid)
        try:
            grace = (task["Spec"].get("ContainerSpec") or {}).get("StopGracePeriod")
            grace_s = grace / 1e9 if isinstance(grace, int) else None
            status = await self._call(self.driver.stop, tid, grace_s)
            self.report(tid, "shutdown", "shutdown", **_exit_fields(status, asked=True))
            await self._release(tid)
        except Exception as exc:
            log.warning("stopping task %s: %s", tid, exc)
            self.report(tid, "shutdown", "shutdown", Err=str(exc))
        finally:
            self.busy.discard(tid)
            self._recheck(tid)

    async def _release(self, tid: str) -> None:
        """A task that ended leaves its networks at once (its record stays for `service ps`)."""
        if self.hooks is not None:
            try:
                await self.hooks.before_remove(tid)
            except Exception as exc:
                log.warning("detaching task %s: %s", tid, exc)

    async def _forget(self, tid: str) -> None:
        self.busy.add(tid)
        try:
            if self.state.get(tid) in UP:
                status = await self._call(self.driver.stop, tid, None)
                task = self.removed.get(tid) or {"ID": tid}
                self._notify(task, "shutdown", _exit_fields(status, asked=True))
            if self.hooks is not None:
                await self.hooks.before_remove(tid)
            await self._call(self.driver.remove, tid)
        except Exception as exc:
            log.debug("cleaning up task %s: %s", tid, exc)
        finally:
            self.state.pop(tid, None)
            self.adopted.pop(tid, None)
            self.removed.pop(tid, None)
            self.stop_requested.discard(tid)
            self.busy.discard(tid)

    # ---- exits
    def watch_exit(self, tid: str) -> None:
        """Have the event loop tell when the running task ends (no-op for drivers without pidfds)."""
        if tid in self.exit_fds or self.state.get(tid) not in UP:
            return
        exit_fd = getattr(self.driver, "exit_fd", None)
        fd = exit_fd(tid) if exit_fd else None
        if fd is None:
            return  # the slow poll in check_exits covers it
        self.exit_fds[tid] = fd
        asyncio.get_running_loop().add_reader(fd, self._exit_readable, tid)

    def _exit_readable(self, tid: str) -> None:
        self.unwatch_exit(tid)
        self.check_exits([tid])

    def unwatch_exit(self, tid: str) -> None:
        fd = self.exit_fds.pop(tid, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        for tid in list(self.exit_fds):
            self.unwatch_exit(tid)
        self.health.close()

    # ---- health checks (SwarmKit's container controller: STARTING until the first healthy result)
    def _report_up(self, tid: str, pid: int) -> None:
        if self.health.watch(tid):
            self.report(tid, "starting", "starting", PID=pid)  # RUNNING waits for a healthy result
        else:
            self.report(tid, "running", "started", PID=pid)

    def _adopt_health(self, task: dict[str, Any], first: bool = False) -> None:
        """`first`: the first copy of an adopted task, whose status is the store's as of now (later
        copies may be older: a task changed only in its status is not sent again)."""
        tid = task["ID"]
        held = task["Status"]["State"]
        before_running = held == "starting" or (first and state_rank(held) < state_rank("running"))
        if self.health.watch(tid) and self.state.get(tid) == "running" and before_running:
            self.state[tid] = "starting"  # adopted before its first healthy result: RUNNING waits for it

    def _confirm_adopted(self, task: dict[str, Any]) -> None:
        """A task adopted at the agent's restart whose state the store lacks is reported now: the
        previous agent started it but its STARTING/RUNNING report was still queued or on the way
        when it stopped, and this agent, finding it running, had nothing to report, so the store
        kept it ACCEPTED for good (SwarmKit's restarted worker reports what its controller finds)."""
        tid = task["ID"]
        pid = self.adopted.pop(tid, None)
        known = self.state.get(tid)
        if pid is None or known not in UP or state_rank(task["Status"]["State"]) >= state_rank(known):
            return
        self.report(tid, known, "started" if known == "running" else "starting", PID=pid)

    def _health_changed(self, tid: str, status: str) -> None:
        if tid in self.busy or self.state.get(tid) not in UP:
            return
        if status == HEALTHY and self.state.get(tid) == "starting":
            self.report(tid, "running", "started")
        elif status == UNHEALTHY:
            self._spawn(self._stop_unhealthy(tid))

    async def _stop_unhealthy(self, tid: str) -> None:
        """FAILED at once (the task leaves its VIP, DNS and mesh backends before its stop grace
        runs out, as SwarmKit deactivates the service binding first), then stopped; the exit code
        follows in a second report with SwarmKit's message."""
        self.busy.add(tid)
        self.stop_requested.add(tid)
        try:
            self.report(tid, "failed", "started", Err=UNHEALTHY_ERR)
            await asyncio.sleep(self.drain_delay)  # the backends drop it before it stops answering
            task = self.assigned.get(tid) or {}
            grace = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("StopGracePeriod")
            status = await self._call(self.driver.stop, tid, grace / 1e9 if isinstance(grace, int) else None)
            code = status.exit_code if status is not None else 137
            self.report(tid, "failed", "started", Err=f"task: non-zero exit ({code}): {UNHEALTHY_ERR}", ExitCode=code)
            await self._release(tid)
        except Exception as exc:
            log.warning("stopping unhealthy task %s: %s", tid, exc)
        finally:
            self.busy.discard(tid)
            self._recheck(tid)

    def poll_unwatched(self) -> None:
        """The fallback: tasks with no pidfd (adopted ones get one here) are polled."""
        for tid, state in list(self.state.items()):
            if state in UP and tid not in self.exit_fds and tid not in self.busy:
                self.watch_exit(tid)
        self.check_exits([tid for tid in self.state if tid not in self.exit_fds])

    def check_exits(self, only: list[str] | None = None) -> None:
        for tid in list(self.state) if only is None else only:
            state = self.state.get(tid)
            if state not in UP or tid in self.busy:
                continue
            try:
                status = self.driver.poll(tid)
            except Exception:
                continue
            if status is None:
                continue
            if tid in self.stop_requested:
                continue  # _stop reports it
            fields = _exit_fields(status, asked=False)
            self._spawn(self._release(tid))
            if status.exit_code == 0 and not status.error:
                self.report(tid, "complete", "finished", **fields)
            else:
                self.report(tid, "failed", "started", **fields)


def _networked(task: dict[str, Any]) -> bool:
    """Tasks on overlays, or publishing host-mode ports (they need the gateway-bridge leg)."""
    ports = (task.get("Endpoint") or {}).get("Ports") or []
    return bool(task.get("NetworksAttachments")) or any(p.get("PublishMode") == "host" for p in ports)


def _exit_fields(status: ExitStatus | None, asked: bool) -> dict[str, Any]:
    if status is None:
        return {}
    fields: dict[str, Any] = {"ExitCode": status.exit_code}
    if status.message and not asked:
        fields["Err"] = status.message
    return fields
