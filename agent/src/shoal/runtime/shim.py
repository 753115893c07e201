"""The per-task supervisor (conmon's role): `python -S -m shoal.runtime.shim TASK_DIR`.

It detaches from the agent (double fork, own session), forks the task (taskinit.py puts it in
its namespaces) and stays its parent, so that the exit status is known even while the agent is
dead: it goes into TASK_DIR/exit.json, where a restarted agent reads it. One line of JSON on
stdout tells the driver how the start went; after that the shim only writes files.

The shim itself stays in the host's namespaces, so host tooling finds it (the testbed stops
every process of a host's network namespace). SIGTERM, SIGINT or SIGHUP to the shim end the
task (SIGKILL) and are recorded; if the shim is SIGKILLed the task dies with it (parent death
signal) and the driver records the status as lost.

Runs once per task start: stdlib os/json/ctypes/signal only (see linux.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time

from shoal.runtime import linux, taskinit

CONFIG, STATE, EXIT, LOG = "config.json", "state.json", "exit.json", "output.log"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def log(msg: str) -> None:
    sys.stderr.write(f"{now()} shim[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


def report(msg: dict) -> None:
    with contextlib.suppress(OSError):  # the driver gave up waiting: the files say the same
        os.write(1, (json.dumps(msg) + "\n").encode())
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def fail(task_dir: str, code: int, error: str) -> int:
    error = f"starting task failed: {error}"
    record = {"exit_code": code, "signal": None, "oom_killed": False, "error": error, "finished_at": now()}
    linux.write_json(os.path.join(task_dir, EXIT), record)
    report({"ok": False, "error": error})
    return 1


def _reap() -> set[int]:
    done = set()
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.add(pid)


def kill_leftovers(netns_ino: int | None, cgroups: list[str], timeout: float = 5.0) -> None:
    """The main process ended: end the rest, as the end of a container's init does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = linux.task_pids(netns_ino, cgroups, os.getpid())
        reaped = _reap()
        if not pids - reaped:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    log(f"processes left after {timeout}s: {sorted(linux.task_pids(netns_ino, cgroups, os.getpid()))}")


def remove_cgroups(paths: list[str]) -> None:
    """As Docker does when a container stops; the driver's remove() would do it otherwise."""
    for path in paths:
        for _ in range(100):  # the kernel refuses while the last process is still exiting
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)


def exit_record(status: int, cgroups: list[str], stopped_by: int | None) -> dict:
    if os.WIFSIGNALED(status):
        sig: int | None = os.WTERMSIG(status)
        code = 128 + (sig or 0)
    else:
        sig, code = None, os.WEXITSTATUS(status)
    error = f"task: killed because its supervisor got signal {stopped_by}" if stopped_by else None
    return {
        "exit_code": code,
        "signal": sig,
        "oom_killed": linux.cgroup_oom_killed(cgroups),
        "error": error,
        "finished_at": now(),
    }


def start(cfg: dict, task_dir: str) -> int | None:
    """Fork the task; its pid once it exec'd, None after recording why it could not."""
    log_fd = os.open(os.path.join(task_dir, LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    null_fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    shim_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        taskinit.run_task(cfg, task_dir, shim_pid, log_fd, null_fd, err_w)
    os.close(err_w)
    os.close(log_fd)
    os.close(null_fd)
    chunks = []
    while chunk := os.read(err_r, 65536):  # EOF: the exec succeeded (close-on-exec) or the child died
        chunks.append(chunk)
    os.close(err_r)
    if not chunks:
        return pid
    os.waitpid(pid, 0)
    try:
        err = json.loads(b"".join(chunks))
    except ValueError:
        err = {"code": taskinit.EXIT_SETUP, "error": "the task's setup failed"}
    fail(task_dir, err["code"], err["error"])
    return None


def run(task_dir: str) -> int:
    with open(os.path.join(task_dir, CONFIG)) as f:
        cfg = json.load(f)
    linux.set_child_subreaper()  # orphans of the task come to us: reaped, and killed at the end
    stopped_by: list[int] = []
    main_pid: list[int] = []

    def on_stop(signum: int, _frame: object) -> None:
        stopped_by.append(signum)
        if main_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(main_pid[0], signal.SIGKILL)

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_stop)
    netns_ino = os.stat(cfg["netns_path"]).st_ino
    pid = start(cfg, task_dir)
    if pid is None:
        kill_leftovers(netns_ino, cfg["cgroups"])
        remove_cgroups(cfg["cgroups"])
        return 1
    main_pid.append(pid)
    state = {
        "pid": pid,
        "pid_start": linux.start_time(pid),
        "shim_pid": os.getpid(),
        "shim_start": linux.start_time(os.getpid()),
        "boot_id": linux.boot_id(),
        "started_at": now(),
    }
    linux.write_json(os.path.join(task_dir, STATE), state)
    report({"ok": True, **state})
    if stopped_by:  # a stop signal came before the pid was known
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    status = wait_main(pid)
    record = exit_record(status, cfg["cgroups"], stopped_by[0] if stopped_by else None)
    kill_leftovers(netns_ino, cfg["cgroups"])
    remove_cgroups(cfg["cgroups"])
    linux.write_json(os.path.join(task_dir, EXIT), record)
    return 0


def wait_main(pid: int) -> int:
    while True:
        wpid, status = os.waitpid(-1, 0)  # also reaps orphans handed to us as subreaper
        if wpid == pid:
            return status


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m shoal.runtime.shim TASK_DIR\n")
        return 2
    task_dir = os.path.abspath(argv[1])
    # detach: the driver reaps this first process at once; the shim lives on, reparented to
    # init (or a subreaper), so neither the agent's death nor its child handling touch it
    if os.fork() > 0:
        os._exit(0)
    with contextlib.suppress(OSError):
        linux.set_comm("shoal-shim")  # tells shims apart from other Python processes in `ps`
    err = os.open(os.path.join(task_dir, "shim.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    os.dup2(err, 2)
    os.close(err)
    try:
        return run(task_dir)
    except BaseException as exc:  # last resort: the driver must not wait for a silent shim
        log(f"crashed: {exc!r}")
        return fail(task_dir, taskinit.EXIT_SETUP, f"shim: {exc}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
