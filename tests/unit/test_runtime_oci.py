"""The oci driver's pure parts: config.json from a task spec and its image, conmon's answers and
exit files, the status read back from a bundle, and k8s-file logs (no container is started)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from shoal.model.errors import SpecError
from shoal.runtime import Driver, NoSuchImage, NoSuchTask, TaskRejected
from shoal.runtime.cgroups import CgroupLayout
from shoal.runtime.images import Image, ImageStore
from shoal.runtime.linux import boot_id, write_json
from shoal.runtime.oci import bundle, conmon, k8slog
from shoal.runtime.oci.driver import HOST_BINDS_LABEL, OCIDriver, stop_signal

TASK_ID = "abcdefghijklmnopqrstuvwxy"
V1 = CgroupLayout(1, {"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu", "pids": "/sys/fs/cgroup/pids"})


@pytest.fixture
def driver(tmp_path: Path) -> OCIDriver:
    return OCIDriver(
        tmp_path / "tasks", images=ImageStore(tmp_path / "images"), run_dir=tmp_path / "run", cgroup_layout=V1
    )


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001:web:/home/web:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nweb:x:1001:\nextra:x:2000:web\n")
    return root


def image(rootfs: Path | None, **config: Any) -> Image:
    return Image(id="sha256:" + "a" * 64, repo_tags=["app:1"], created="", config=config, rootfs=rootfs)


def task(**container: Any) -> dict[str, Any]:
    resources = container.pop("Resources", None)
    spec: dict[str, Any] = {"ContainerSpec": {"Image": "app:1", **container}}
    if resources:
        spec["Resources"] = resources
    return {"ID": TASK_ID, "ServiceID": "svc", "Slot": 1, "Spec": spec}


def config_of(driver: OCIDriver, t: dict[str, Any], img: Image) -> tuple[dict[str, Any], dict[str, Any]]:
    plan, extra = driver.resolve(t, img)
    return bundle.config(plan), extra


def test_is_a_driver(driver: OCIDriver) -> None:
    assert isinstance(driver, Driver) and driver.name == "oci"


class LocalOnly:
    """An image store that never pulls: one config-only image, no registry."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        store.import_dir(None, "app:1")

    def get(self, ref: str) -> Image:
        return self.store.get(ref)


def test_rejections_happen_before_any_side_effect(tmp_path: Path) -> None:
    no_cgroups = OCIDriver(
        tmp_path / "tasks",
        images=LocalOnly(ImageStore(tmp_path / "images")),  # type: ignore[arg-type]
        run_dir=tmp_path / "run",
        cgroup_layout=CgroupLayout(0),
    )
    with pytest.raises(NoSuchImage, match="No such image: nosuch:1"):
        no_cgroups.prepare(task(Image="nosuch:1", Args=["true"]))
    with pytest.raises(SpecError, match="4MB"):
        no_cgroups.prepare(task(Args=["true"], Resources={"Limits": {"MemoryBytes": 1024}}))
    with pytest.raises(TaskRejected, match="neither cgroup v2 nor v1"):  # limits without cgroups
        no_cgroups.prepare(task(Args=["true"], Resources={"Limits": {"MemoryBytes": 64 << 20}}))
    with pytest.raises(SpecError, match="invalid task ID"):
        no_cgroups.prepare({"ID": "../etc", "Spec": {"ContainerSpec": {"Image": "app:1"}}})
    assert not no_cgroups.state_dir.exists() and no_cgroups.task_ids() == []
    with pytest.raises(NoSuchTask, match=f"No such task: {TASK_ID}"):
        no_cgroups.poll(TASK_ID)


# ---- config.json ------------------------------------------------------------------------------


def test_process_from_image_config_and_spec(driver: OCIDriver, rootfs: Path) -> None:
    img = image(rootfs, Entrypoint=["/app"], Cmd=["--serve"], Env=["A=1", "B=2"], WorkingDir="/srv", User="web")
    cfg, extra = config_of(driver, task(Args=["--debug"], Env=["B=3"]), img)
    proc = cfg["process"]
    assert proc["args"] == ["/app", "--debug"]  # Args replace Cmd, the Entrypoint stays
    assert "A=1" in proc["env"] and "B=3" in proc["env"] and "B=2" not in proc["env"]
    assert f"HOSTNAME={TASK_ID[:12]}" in proc["env"] and "HOME=/home/web" in proc["env"]
    assert proc["cwd"] == "/srv"
    assert proc["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [2000]}
    assert cfg["hostname"] == TASK_ID[:12]
    assert cfg["root"] == {"path": "rootfs", "readonly": False}
    assert extra["stop_signal"] == 15 and extra["stop_grace"] == 10.0

    cfg, _ = config_of(driver, task(Command=["/bin/other", "x"], Dir="/tmp", User="0:0", Hostname="h1"), img)
    assert cfg["process"]["args"] == ["/bin/other", "x"]  # Command replaces Entrypoint and Cmd
    assert cfg["process"]["cwd"] == "/tmp" and cfg["hostname"] == "h1"
    assert cfg["process"]["user"] == {"uid": 0, "gid": 0}


def test_unknown_user_and_no_command_are_refused(driver: OCIDriver, rootfs: Path) -> None:
    with pytest.raises(Exception, match="unable to find user nobody"):
        driver.resolve(task(User="nobody"), image(rootfs, Cmd=["x"]))
    with pytest.raises(Exception, match="no command specified"):
        driver.resolve(task(), image(rootfs))


def test_namespaces_join_the_prepared_netns_and_own_the_rest(driver: OCIDriver, rootfs: Path) -> None:
    cfg, _ = config_of(driver, task(), image(rootfs, Cmd=["x"]))
    spaces = {n["type"]: n.get("path") for n in cfg["linux"]["namespaces"]}
    assert spaces == {
        "network": f"/run/netns/task-{TASK_ID[:12]}",
        "pid": None,
        "ipc": None,
        "uts": None,
        "mount": None,
    }
    assert cfg["linux"]["cgroupsPath"] == f"/shoal/{TASK_ID}"
    dests = [m["destination"] for m in cfg["mounts"]]
    for path in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/sys", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"):
        assert path in dests
    hosts = next(m for m in cfg["mounts"] if m["destination"] == "/etc/hosts")
    assert hosts["source"] == str(driver.task_dir(TASK_ID) / "hosts") and "ro" not in hosts["options"]


def test_capabilities_default_add_drop_and_all() -> None:
    assert bundle.capabilities() == list(bundle.DEFAULT_CAPS)
    caps = bundle.capabilities(add=["net_admin"], drop=["CAP_CHOWN", "mknod"])
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps and "CAP_MKNOD" not in caps
    assert bundle.capabilities(drop=["ALL"], add=["NET_BIND_SERVICE"]) == ["CAP_NET_BIND_SERVICE"]
    assert set(bundle.capabilities(add=["ALL"], drop=["SYS_ADMIN"])) == set(bundle.ALL_CAPS) - {"CAP_SYS_ADMIN"}
    with pytest.raises(SpecError, match="unknown capability: 'CAP_FLY'"):
        bundle.capabilities(add=["CAP_FLY"])


def test_readonly_caps_and_init_in_config(driver: OCIDriver, rootfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shoal.runtime.oci.driver._which_init", lambda: "/usr/bin/catatonit")
    t = task(ReadOnly=True, Init=True, CapabilityDrop=["ALL"], CapabilityAdd=["KILL"], Args=["run"])
    cfg, _ = config_of(driver, t, image(rootfs, Entrypoint=["/app"]))
    assert cfg["root"]["readonly"] is True
    assert cfg["process"]["capabilities"]["bounding"] == ["CAP_KILL"]
    assert cfg["process"]["args"] == ["/dev/init", "--", "/app", "run"]
    init = next(m for m in cfg["mounts"] if m["destination"] == "/dev/init")
    assert init["source"] == "/usr/bin/catatonit" and "ro" in init["options"]
    monkeypatch.setattr("shoal.runtime.oci.driver._which_init", lambda: None)
    with pytest.raises(TaskRejected, match="no init binary"):
        driver.resolve(t, image(rootfs, Entrypoint=["/app"]))


def test_resources_limits_and_reservations(driver: OCIDriver, rootfs: Path) -> None:
    res = {
        "Limits": {"MemoryBytes": 64 << 20, "NanoCPUs": 500_000_000, "Pids": 100},
        "Reservations": {"MemoryBytes": 32 << 20, "NanoCPUs": 250_000_000},
    }
    cfg, _ = config_of(driver, task(Resources=res, Args=["x"]), image(rootfs, Entrypoint=["/app"]))
    r = cfg["linux"]["resources"]
    assert r["memory"] == {"limit": 64 << 20, "reservation": 32 << 20}
    assert r["cpu"] == {"period": 100_000, "quota": 50_000, "shares": 256}
    assert r["pids"] == {"limit": 100}
    with pytest.raises(SpecError, match="4MB"):
        driver.resolve(task(Resources={"Limits": {"MemoryBytes": 1024}}, Args=["x"]), image(rootfs, Entrypoint=["/a"]))
    bare = OCIDriver(driver.state_dir, images=driver.images, run_dir=driver.run_dir, cgroup_layout=CgroupLayout(0))
    with pytest.raises(TaskRejected, match="neither cgroup v2 nor v1"):
        bare.resolve(
            task(Resources={"Limits": {"MemoryBytes": 64 << 20}}, Args=["x"]), image(rootfs, Entrypoint=["/a"])
        )


def test_host_binds_come_from_the_image_label(driver: OCIDriver, rootfs: Path) -> None:
    img = image(rootfs, Cmd=["x"], Labels={HOST_BINDS_LABEL: "/usr, /lib"})
    cfg, _ = config_of(driver, task(), img)
    binds = [m for m in cfg["mounts"] if m["destination"] in ("/usr", "/lib")]
    assert [(m["source"], "ro" in m["options"]) for m in binds] == [("/usr", True), ("/lib", True)]
    with pytest.raises(Exception, match="not an absolute path"):
        driver.resolve(task(), image(rootfs, Cmd=["x"], Labels={HOST_BINDS_LABEL: "usr"}))
    cfg, _ = config_of(driver, task(), image(rootfs, Cmd=["x"]))
    assert not [m for m in cfg["mounts"] if m["destination"] == "/usr"]  # no label: the image's own /usr


def test_stop_signal_from_spec_or_image() -> None:
    assert stop_signal({}, {}) == 15
    assert stop_signal({"StopSignal": "SIGQUIT"}, {}) == 3
    assert stop_signal({"StopSignal": "SIGQUIT"}, {"StopSignal": "INT"}) == 2
    assert stop_signal({}, {"StopSignal": "9"}) == 9
    with pytest.raises(SpecError, match="invalid stop signal"):
        stop_signal({}, {"StopSignal": "SIGNOPE"})


# ---- conmon -----------------------------------------------------------------------------------


def test_conmon_sync_answer_and_exit_file() -> None:
    assert conmon.parse_sync(b'{"data": 4242}\n') == (4242, "")
    assert conmon.parse_sync(b'{"data": -1, "message": "runc create failed: no such file"}\n') == (
        -1,
        "runc create failed: no such file",
    )
    assert conmon.parse_sync(b"") == (-1, "")
    assert conmon.parse_exit_file("137") == 137 and conmon.parse_exit_file("0\n") == 0
    assert conmon.parse_exit_file("") is None and conmon.parse_exit_file("x") is None
    assert conmon.signal_of(137) == 9 and conmon.signal_of(143) == 15 and conmon.signal_of(1) is None


def test_conmon_argv_has_one_bundle_exit_dir_and_capped_log(tmp_path: Path) -> None:
    paths = conmon.Paths(tmp_path / "b", TASK_ID, tmp_path / "sock")
    argv = conmon.conmon_argv("/usr/bin/conmon", "/usr/sbin/runc", "/run/shoal/runc", paths, 1000)
    pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert argv[argv.index("-b") + 1] == str(tmp_path / "b")
    assert argv[argv.index("--exit-dir") + 1] == str(tmp_path / "b" / "exits")
    assert argv[argv.index("-l") + 1] == f"k8s-file:{tmp_path / 'b' / 'ctr.log'}"
    assert argv[argv.index("--log-size-max") + 1] == "1000"
    assert "--runtime-arg" in pairs or "--runtime-arg" in argv


def _started(driver: OCIDriver, pid: int = 999_999_999) -> Path:
    d = driver.task_dir(TASK_ID)
    (d / "exits").mkdir(parents=True)
    write_json(
        d / "started.json",
        {"pid": pid, "pid_start": 1, "conmon_pid": pid, "conmon_start": 1, "boot_id": boot_id(), "started_at": "x"},
    )
    return d


def test_status_from_exit_file(driver: OCIDriver) -> None:
    d = _started(driver)
    (d / "exits" / TASK_ID).write_text("137")
    status = driver.poll(TASK_ID)
    assert status is not None and status.exit_code == 137 and status.signal == 9
    assert status.message == "task: non-zero exit (137)" and not status.oom_killed
    (d / "oom").touch()
    assert driver.poll(TASK_ID).oom_killed  # type: ignore[union-attr]
    assert driver.handle(TASK_ID) is None and driver.adopt() == []


def test_status_lost_without_exit_file_or_monitor(driver: OCIDriver) -> None:
    _started(driver)
    status = driver.poll(TASK_ID)
    assert status is not None and status.exit_code == 255
    assert status.error == "task: exit status lost (its monitor (conmon) was killed)"


def test_running_while_conmon_lives_and_start_error(driver: OCIDriver) -> None:
    me = os.getpid()
    d = driver.task_dir(TASK_ID)
    (d / "exits").mkdir(parents=True)
    from shoal.runtime.linux import start_time

    write_json(
        d / "started.json",
        {
            "pid": me,
            "pid_start": start_time(me),
            "conmon_pid": me,
            "conmon_start": start_time(me),
            "boot_id": boot_id(),
            "started_at": "t",
        },
    )
    assert driver.poll(TASK_ID) is None
    assert [h.task_id for h in driver.adopt()] == [TASK_ID]
    (d / "start.err").write_text('{"error": "starting container failed: exec: \\"x\\": not found"}')
    status = driver.poll(TASK_ID)
    assert status is not None and status.exit_code == 127 and "not found" in status.message


# ---- k8s-file logs ----------------------------------------------------------------------------

LOG = (
    b"2026-12-02T11:24:17.051182539+00:00 stdout F hello\n"
    b"2026-12-02T11:24:17.100000000+00:00 stderr P par\n"
    b"2026-12-02T11:24:17.200000000+00:00 stdout F between\n"
    b"2026-12-02T11:24:17.300000000+00:00 stderr F tial\n"
    b"garbage line\n"
    b"2026-12-02T11:24:18.000000000+00:00 stdout F \n"
)


def test_k8s_file_records_keep_streams_timestamps_and_join_partials() -> None:
    recs = k8slog.parse(LOG)
    assert [(r.stream, r.data) for r in recs] == [(1, b"hello\n"), (1, b"between\n"), (2, b"partial\n"), (1, b"\n")]
    assert recs[0].timestamp == "2026-12-02T11:24:17.051182539Z"
    assert recs[2].timestamp == "2026-12-02T11:24:17.100000000Z"  # a joined line keeps its first time
    assert abs(recs[0].time - 1796210657.051182539) < 1e-5
    assert k8slog.parse_line(b"2026 stdout X x") is None
    assert k8slog.parse(recs[1].to_line()) == [recs[1]]


def test_k8s_file_tail_and_since(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    path.write_bytes(LOG)
    assert [r.data for r in k8slog.read_records(path, tail=1)] == [b"\n"]
    since = k8slog.parse_time("2026-12-02T11:24:17.150000000Z")
    assert [r.data for r in k8slog.read_records(path, since=since)] == [b"between\n", b"\n"]
    assert list(k8slog.read_records(tmp_path / "missing.log")) == []


def test_k8s_file_tail_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(k8slog, "BLOCK", 7)
    path = tmp_path / "ctr.log"
    lines = [b"2026-12-02T11:24:17.0+00:00 stdout F line %d\n" % i for i in range(50)]
    path.write_bytes(b"".join(lines) + b"2026-12-02T11:24:18.0+00:00 stdout P last")
    got = [r.data for r in k8slog.read_records(path, tail=13)]
    assert got == [b"line %d\n" % i for i in range(38, 50)] + [b"last"]  # a piece without its end counts
    assert list(k8slog.read_records(path, tail=0)) == []


def test_k8s_file_follow_reads_on_after_conmon_restarts_the_log(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    path.write_bytes(b"2026-12-02T11:24:17.0+00:00 stdout F one\n")
    looks = {"n": 0}

    def running() -> bool:
        looks["n"] += 1
        if looks["n"] == 1:  # the cap was reached: conmon writes a new file and renames it over
            new = tmp_path / "ctr.log.tmp"
            new.write_bytes(b"2026-12-02T11:24:19.0+00:00 stdout F two\n")
            os.rename(new, path)
        return looks["n"] < 3

    start = time.monotonic()
    got = [r.data for r in k8slog.read_records(path, follow=True, running=running)]
    assert got == [b"one\n", b"two\n"] and time.monotonic() - start < 5


def test_registry_auth_travels_in_pull_options() -> None:
    import base64
    import json

    from shoal.runtime.oci.driver import task_registry_auth

    auth = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "p"}).encode()).decode().rstrip("=")
    t = task(PullOptions={"RegistryAuth": auth})
    assert task_registry_auth(t) == {"username": "u", "password": "p"}
    assert task_registry_auth(task()) is None
    assert task_registry_auth(task(PullOptions={"RegistryAuth": "%%%"})) is None
