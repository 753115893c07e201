"""What the shim's child does between fork and exec: join the task's cgroups and network
namespace, make its own mount and UTS namespaces (hostname, /etc files, root filesystem),
drop to the task's user, exec the command. Errors go back to the shim through `err_w`.

Runs in the shim process after fork(): stdlib only, nothing slow (see linux.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys

from shoal.runtime import linux

EXIT_SETUP, EXIT_CANNOT_EXEC, EXIT_NOT_FOUND = 128, 126, 127
# Python ignores SIGPIPE and SIGXFSZ and the shim handles these: the task gets the defaults
RESET_IN_TASK = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE, signal.SIGXFSZ)
ETC_FILES = ("hostname", "hosts", "resolv.conf")


def warn(msg: str) -> None:
    sys.stderr.write(f"task init[{os.getpid()}]: {msg}\n")  # stderr is shim.log until exec
    sys.stderr.flush()


def enter_namespaces(cfg: dict) -> None:
    fd = os.open(cfg["netns_path"], os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(fd, linux.CLONE_NEWNET)  # single-threaded after fork: the whole process moves
    finally:
        os.close(fd)
    linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWUTS)
    # slave: host mounts (and unmounts, e.g. of other tasks' netns files) still reach the task,
    # its own never reach the host; they all vanish with the task's last process
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE)
    with contextlib.suppress(OSError):
        # the task needs no namespace files; holding copies of them would pin other namespaces
        linux.umount("/run/netns")
    linux.sethostname(cfg["hostname"])


def mount_rootfs(cfg: dict, task_dir: str) -> str:
    """The image's root filesystem for chroot: overlay with a per-task upper layer (the image
    stays untouched), a plain bind where overlay is refused. Returns the new root."""
    lower, merged = cfg["rootfs"], os.path.join(task_dir, "rootfs")
    upper, work = os.path.join(task_dir, "upper"), os.path.join(task_dir, "work")
    try:
        linux.mount("overlay", merged, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")
    except OSError as exc:
        warn(f"overlay refused ({exc}); the task writes into the image directory")
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


def bind_etc_files(task_dir: str, root: str) -> None:
    for name in ETC_FILES:
        try:
            linux.mount(os.path.join(task_dir, name), os.path.join(root, "etc", name), None, linux.MS_BIND)
        except OSError as exc:  # e.g. a dangling resolv.conf symlink on the host
            warn(f"cannot bind /etc/{name}: {exc}")


def setup(cfg: dict, task_dir: str, shim_pid: int, log_fd: int, null_fd: int) -> dict[str, str]:
    """Everything but the exec; returns the task's environment."""
    # the task dies with its shim: no unsupervised task whose exit nobody can record, and
    # stopping the shims (testbed down, a whole-cgroup service stop) ends the tasks
    linux.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != shim_pid:
        raise OSError("the shim died during the start")
    os.setsid()  # own process group: the task and its children can be signalled at once
    for path in cfg["cgroups"]:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write("0")
    enter_namespaces(cfg)
    root = mount_rootfs(cfg, task_dir) if cfg["rootfs"] else "/"
    bind_etc_files(task_dir, root)
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
    return dict(e.split("=", 1) for e in cfg["env"])


def run_task(cfg: dict, task_dir: str, shim_pid: int, log_fd: int, null_fd: int, err_w: int) -> None:
    """In the forked child; never returns."""
    argv = cfg["argv"]
    try:
        env = setup(cfg, task_dir, shim_pid, log_fd, null_fd)
    except BaseException as exc:
        _failed(err_w, EXIT_SETUP, str(exc))
    try:
        os.execvpe(argv[0], argv, env)  # PATH from the task's env, as Docker resolves it
    except FileNotFoundError:
        where = "no such file or directory" if "/" in argv[0] else "executable file not found in $PATH"
        _failed(err_w, EXIT_NOT_FOUND, f'exec: "{argv[0]}": {where}')
    except PermissionError:
        _failed(err_w, EXIT_CANNOT_EXEC, f'exec: "{argv[0]}": permission denied')
    except BaseException as exc:
        _failed(err_w, EXIT_CANNOT_EXEC, f'exec: "{argv[0]}": {exc}')
    os._exit(EXIT_SETUP)


def _failed(err_w: int, code: int, error: str) -> None:
    with contextlib.suppress(OSError):
        os.write(err_w, json.dumps({"code": code, "error": error}).encode())
    os._exit(code)
