"""The per-task supervisor (conmon's role): `python -S -m shoal.runtime.shim TASK_DIR`.

It detaches from the agent (double fork, own session), enters the task's network namespace,
makes its own mount and UTS namespaces, starts the task's process and stays its parent, so
that the exit status is known even when the agent is dead: it goes into TASK_DIR/exit.json,
where a restarted agent reads it. One line of JSON on stdout tells the driver how the start
went; after that the shim writes only files.

Runs once per task start: stdlib os/json/ctypes/signal only (see linux.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time

from shoal.runtime import linux

CONFIG, STATE, EXIT, LOG = "config.json", "state.json", "exit.json", "output.log"
EXIT_SETUP, EXIT_CANNOT_EXEC, EXIT_NOT_FOUND = 128, 126, 127
# ignored by the shim (a stray ^C or TERM must not orphan a task); reset to default for the task
SHIM_IGNORED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
RESET_IN_TASK = (*SHIM_IGNORED, signal.SIGPIPE, signal.SIGXFSZ)


def now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def log(msg: str) -> None:
    sys.stderr.write(f"{now()} shim[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


def enter_namespaces(cfg: dict) -> None:
    fd = os.open(cfg["netns_path"], os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(fd, linux.CLONE_NEWNET)  # the shim is single-threaded: the whole process moves
    finally:
        os.close(fd)
    linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWUTS)
    # slave: host mounts (and unmounts, e.g. of other tasks' netns files) still reach us, ours
    # never reach the host; everything mounted below vanishes with the task's last process
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE)
    with contextlib.suppress(OSError):
        # the task needs no namespace files; holding copies of them would pin other namespaces
        linux.umount("/run/netns")
    linux.sethostname(cfg["hostname"])


def setup_rootfs(cfg: dict, task_dir: str) -> str:
    """Mount the image's root filesystem for chroot: overlay with a per-task upper layer (the
    image stays untouched), a plain bind where overlay is refused. Returns the new root."""
    lower, merged = cfg["rootfs"], os.path.join(task_dir, "rootfs")
    upper, work = os.path.join(task_dir, "upper"), os.path.join(task_dir, "work")
    try:
        linux.mount("overlay", merged, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")
    except OSError as exc:
        log(f"overlay refused ({exc}); the task writes into the image directory")
        linux.mount(lower, merged, None, linux.MS_BIND | linux.MS_REC)
    for sub, source, fstype, flags in (
        ("proc", "proc", "proc", 0),
        ("dev", "/dev", None, linux.MS_BIND | linux.MS_REC),
        ("sys", "/sys", None, linux.MS_BIND | linux.MS_REC),
    ):
        target = os.path.join(merged, sub)
        if os.path.isdir(target) and not os.path.islink(target):
            linux.mount(source, target, fstype, flags)
    return merged


def bind_etc_files(cfg: dict, task_dir: str, root: str) -> None:
    for name in ("hostname", "hosts", "resolv.conf"):
        target = os.path.join(root, "etc", name)
        try:
            linux.mount(os.path.join(task_dir, name), target, None, linux.MS_BIND)
        except OSError as exc:  # e.g. a dangling resolv.conf symlink on the host
            log(f"cannot bind /etc/{name}: {exc}")


def exec_task(cfg: dict, root: str, log_fd: int, null_fd: int, err_w: int) -> None:
    """In the forked child: join the cgroups, chroot, chdir, drop to the user, exec."""
    argv = cfg["argv"]
    try:
        os.setsid()  # own process group: the driver can signal the task and its children at once
        for path in cfg["cgroups"]:
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write("0")
        if root != "/":
            os.chroot(root)
            os.chdir("/")
        os.makedirs(cfg["cwd"], exist_ok=True)  # Docker creates a missing working directory
        os.chdir(cfg["cwd"])
        os.setgroups(cfg["groups"])
        os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
        os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        for sig in RESET_IN_TASK:
            signal.signal(sig, signal.SIG_DFL)
        env = dict(e.split("=", 1) for e in cfg["env"])
    except BaseException as exc:
        _child_failed(err_w, EXIT_SETUP, str(exc))
    try:
        os.execvpe(argv[0], argv, env)  # PATH from the task's env, as Docker resolves it
    except FileNotFoundError:
        where = "no such file or directory" if "/" in argv[0] else "executable file not found in $PATH"
        _child_failed(err_w, EXIT_NOT_FOUND, f'exec: "{argv[0]}": {where}')
    except PermissionError:
        _child_failed(err_w, EXIT_CANNOT_EXEC, f'exec: "{argv[0]}": permission denied')
    except BaseException as exc:
        _child_failed(err_w, EXIT_CANNOT_EXEC, f'exec: "{argv[0]}": {exc}')


def _child_failed(err_w: int, code: int, error: str) -> None:
    os.write(err_w, json.dumps({"code": code, "error": error}).encode())
    os._exit(code)


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


def exit_record(status: int, cgroups: list[str]) -> dict:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        code: int | None = 128 + sig
    else:
        sig, code = None, os.WEXITSTATUS(status)
    return {
        "exit_code": code,
        "signal": sig,
        "oom_killed": linux.cgroup_oom_killed(cgroups),
        "error": None,
        "finished_at": now(),
    }


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


def run(task_dir: str) -> int:
    with open(os.path.join(task_dir, CONFIG)) as f:
        cfg = json.load(f)
    for sig in SHIM_IGNORED:
        signal.signal(sig, signal.SIG_IGN)
    try:
        enter_namespaces(cfg)
        root = setup_rootfs(cfg, task_dir) if cfg["rootfs"] else "/"
        bind_etc_files(cfg, task_dir, root)
        linux.set_child_subreaper()  # orphans of the task come to us: reaped, and killed at the end
        log_fd = os.open(os.path.join(task_dir, LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        null_fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        log(f"setup failed: {exc}")
        return fail(task_dir, EXIT_SETUP, str(exc))
    netns_ino = linux.ns_inode("self", "net")
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        exec_task(cfg, root, log_fd, null_fd, err_w)
    os.close(err_w)
    chunks = []
    while chunk := os.read(err_r, 65536):  # EOF: exec succeeded (close-on-exec) or the child died
        chunks.append(chunk)
    os.close(err_r)
    if chunks:
        os.waitpid(pid, 0)
        err = json.loads(b"".join(chunks))
        kill_leftovers(netns_ino, cfg["cgroups"])
        return fail(task_dir, err["code"], err["error"])
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
    status = wait_main(pid)
    record = exit_record(status, cfg["cgroups"])
    kill_leftovers(netns_ino, cfg["cgroups"])
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
    # init (or a subreaper), so neither the agent's death nor its exit status handling touch it
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
        return fail(task_dir, EXIT_SETUP, f"shim: {exc}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
