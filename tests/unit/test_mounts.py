"""Mounts, DNS, hosts, sysctls and ulimits: validation at the API (Docker's messages), the OCI
mounts and files a task gets (real directories under tmp_path, no container), the node's local
volume store, and the CLI flags that build them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from shoal.cli import service_container as flags
from shoal.errors import Conflict, InvalidArgument, NotFound, SpecError
from shoal.manager.control import volumes as volume_ops
from shoal.model.service import validate_service_spec
from shoal.runtime import TaskRejected, taskopts
from shoal.runtime.oci import bundle
from shoal.runtime.oci import mounts as task_mounts
from shoal.runtime.volumes import ANONYMOUS_LABEL, VolumeStore

TASK_ID = "abcdefghijklmnopqrstuvwxy"


def spec_with(**container: Any) -> dict[str, Any]:
    return {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "app:1", **container}}}


def container_of(**container: Any) -> dict[str, Any]:
    return validate_service_spec(spec_with(**container))["TaskTemplate"]["ContainerSpec"]


def task(**container: Any) -> dict[str, Any]:
    return {"ID": TASK_ID, "Spec": {"ContainerSpec": container_of(**container)}}


# ---- validation -----------------------------------------------------------------------------


def test_valid_mounts_are_kept_in_docker_shape() -> None:
    mounts = [
        {
            "Type": "bind",
            "Source": "/srv",
            "Target": "/data",
            "ReadOnly": True,
            "BindOptions": {"Propagation": "rslave"},
        },
        {
            "Type": "volume",
            "Source": "db",
            "Target": "/var/lib/db",
            "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}},
        },
        {"Type": "volume", "Target": "/cache"},
        {"type": "tmpfs", "target": "/run/x", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}},
    ]
    out = container_of(Mounts=mounts)["Mounts"]
    assert out[0] == {
        "Type": "bind",
        "Source": "/srv",
        "Target": "/data",
        "ReadOnly": True,
        "BindOptions": {"Propagation": "rslave"},
    }
    assert out[1]["VolumeOptions"] == {"NoCopy": True, "Labels": {"a": "b"}}
    assert out[2] == {"Type": "volume", "Source": "", "Target": "/cache"}
    assert out[3]["TmpfsOptions"] == {"SizeBytes": 1 << 20, "Mode": 0o1777}


def test_zero_values_are_accepted_and_left_out() -> None:
    c = container_of(Mounts=[], DNSConfig={}, Hosts=None, Sysctls={}, Ulimits=[])
    assert not {"Mounts", "DNSConfig", "Hosts", "Sysctls", "Ulimits"} & set(c)


@pytest.mark.parametrize(
    ("mounts", "message"),
    [
        (
            [{"Type": "bind", "Source": "/x", "Target": "/proc/sys"}],
            '"/proc/sys" cannot be mounted because it is inside /proc',
        ),
        ([{"Type": "tmpfs", "Target": "/sys"}], "cannot be mounted because it is inside /sys"),
        ([{"Type": "volume", "Target": "/"}], "invalid specification: destination can't be '/'"),
        ([{"Type": "volume", "Target": "data"}], "invalid mount path: 'data' mount path must be absolute"),
        ([{"Type": "volume", "Target": ""}], "field Target must not be empty"),
        ([{"Type": "bind", "Target": "/d"}], 'invalid mount config for type "bind": field Source must not be empty'),
        ([{"Type": "bind", "Source": "rel", "Target": "/d"}], "invalid mount path: 'rel' mount path must be absolute"),
        ([{"Type": "tmpfs", "Source": "x", "Target": "/d"}], "field Source must not be specified"),
        ([{"Type": "bind", "Source": "/x", "Target": "/d", "VolumeOptions": {"NoCopy": True}}], "field VolumeOptions"),
        ([{"Type": "volume", "Source": "a/b", "Target": "/d"}], "includes invalid characters for a local volume name"),
        ([{"Type": "sideways", "Target": "/d"}], "mount type unknown"),
        ([{"Type": "npipe", "Target": "/d"}], "'npipe' is not supported by shoal"),
        (
            [{"Type": "volume", "Target": "/d", "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}}],
            "'nfs' is not supported by shoal",
        ),
        (
            [{"Type": "volume", "Target": "/d", "VolumeOptions": {"DriverConfig": {"Options": {"type": "nfs"}}}}],
            'DriverConfig.Options: missing required option: "device"',
        ),
        (
            [{"Type": "volume", "Target": "/d", "VolumeOptions": {"DriverConfig": {"Options": {"size": "1g"}}}}],
            'invalid option: "size" (quotas are not supported',
        ),
        ([{"Type": "volume", "Target": "/d", "VolumeOptions": {"Subpath": "x"}}], "Subpath is not supported"),
        (
            [{"Type": "volume", "Source": "aa", "Target": "/d"}, {"Type": "tmpfs", "Target": "/d/"}],
            "invalid mount target, duplicate mount point: /d/",
        ),
        ([{"Type": "volume", "Target": "/d", "Bogus": 1}], "unknown field 'Bogus'"),
    ],
)
def test_bad_mounts_are_400s_with_dockers_messages(mounts: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(SpecError) as e:
        validate_service_spec(spec_with(Mounts=mounts))
    assert message in e.value.message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"Sysctls": {"kernel.domainname": "x"}}, "sysctl 'kernel.domainname=x' is not allowed"),
        ({"Sysctls": {"vm.swappiness": "1"}}, "is not allowed"),
        ({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}, "invalid ulimit type: bogus"),
        ({"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 5}]}, "soft limit must be less than or equal to hard"),
        ({"Hosts": ["db"]}, "bad format for add-host"),
        ({"Hosts": ["nope db"]}, "invalid IP address in add-host"),
        ({"DNSConfig": {"Nameservers": ["8.8.8"]}}, "8.8.8 is not an ip address"),
        ({"DNSConfig": {"Search": [".bad"]}}, ".bad is not a valid domain"),
        ({"DNSConfig": {"Servers": []}}, "unknown field 'Servers'"),
    ],
)
def test_bad_container_options(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as e:
        validate_service_spec(spec_with(**fields))
    assert message in e.value.message


def test_good_container_options() -> None:
    c = container_of(
        DNSConfig={"Nameservers": ["10.0.0.2"], "Search": ["example.org"], "Options": ["timeout:2"]},
        Hosts=["10.1.2.3 db db.local", "cache:10.1.2.4"],
        Sysctls={"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20"},
        Ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
    )
    assert c["DNSConfig"]["Nameservers"] == ["10.0.0.2"]
    assert c["Hosts"] == ["10.1.2.3 db db.local", "cache:10.1.2.4"]
    assert c["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]


# ---- what the task gets ---------------------------------------------------------------------


def test_resolv_conf_keeps_the_embedded_dns_first() -> None:
    assert taskopts.resolv_conf({}) == "nameserver 127.0.0.11\noptions ndots:0\n"
    text = taskopts.resolv_conf(
        {"DNSConfig": {"Nameservers": ["10.0.0.2"], "Search": ["a.org", "b.org"], "Options": ["ndots:2"]}}
    )
    assert text == "nameserver 127.0.0.11\nnameserver 10.0.0.2\nsearch a.org b.org\noptions ndots:2\n"


def test_task_nameservers_go_to_the_embedded_dns() -> None:
    task = {"Spec": {"ContainerSpec": {"DNSConfig": {"Nameservers": ["127.0.0.11", "10.0.0.2"]}}}}
    assert taskopts.task_nameservers(task) == ["10.0.0.2"] and taskopts.task_nameservers({}) == []


def test_extra_hosts_both_forms() -> None:
    assert taskopts.extra_hosts({"Hosts": ["10.1.2.3 db db.local", "cache:10.1.2.4"]}) == (
        "10.1.2.3\tdb db.local\n10.1.2.4\tcache\n"
    )


def test_sysctls_and_ulimits_in_config_json() -> None:
    cspec = container_of(Sysctls={"net.core.somaxconn": "512"}, Ulimits=[{"Name": "nofile", "Soft": -1, "Hard": -1}])
    plan = bundle.Plan(
        task_id=TASK_ID, argv=["/bin/true"], env=[], cwd="/", uid=0, gid=0, groups=(), hostname="h",
        netns_path="/run/netns/x", task_dir="/tmp/t", sysctl=taskopts.sysctl(cspec),
        rlimits=tuple(taskopts.rlimits(cspec)),
        user_mounts=({"destination": "/d", "type": "tmpfs", "source": "tmpfs", "options": []},),
    )  # fmt: skip
    cfg = bundle.config(plan)
    assert cfg["linux"]["sysctl"] == {"net.core.somaxconn": "512"}
    assert cfg["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 2**64 - 1, "soft": 2**64 - 1}]
    assert cfg["mounts"][-1]["destination"] == "/d"  # after the /etc files: a user's mount wins


def test_bind_source_missing_rejects_the_task(tmp_path: Path) -> None:
    t = task(Mounts=[{"Type": "bind", "Source": str(tmp_path / "nope"), "Target": "/x"}])
    with pytest.raises(TaskRejected) as e:
        task_mounts.prepare(t, None, VolumeStore(tmp_path / "volumes"))
    assert e.value.message == f'invalid mount config for type "bind": bind source path does not exist: {tmp_path}/nope'


def test_oci_mounts_for_bind_volume_and_tmpfs(tmp_path: Path) -> None:
    image_root = tmp_path / "rootfs"
    (image_root / "var/lib/db").mkdir(parents=True)
    (image_root / "var/lib/db/seed.txt").write_text("from the image")
    store = VolumeStore(tmp_path / "volumes")
    t = task(
        Mounts=[
            {"Type": "bind", "Source": str(tmp_path), "Target": "/host", "ReadOnly": True},
            {"Type": "volume", "Source": "db", "Target": "/var/lib/db"},
            {"Type": "volume", "Target": "/cache"},
            {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 65536, "Mode": 0o700}},
        ]
    )
    out = task_mounts.prepare(t, image_root, store)
    assert out[0] == {
        "destination": "/host",
        "type": "bind",
        "source": str(tmp_path),
        "options": ["rbind", "rprivate", "ro"],
    }
    db = store.get("db")
    assert out[1]["source"] == db.mountpoint and out[1]["options"] == ["rbind", "rprivate"]
    assert Path(db.mountpoint, "seed.txt").read_text() == "from the image"  # copy-up on first use
    anon = task_mounts.anonymous_name(TASK_ID, "/cache")
    assert out[2]["source"] == store.get(anon).mountpoint and store.get(anon).anonymous
    assert out[3] == {
        "destination": "/scratch",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["noexec", "nosuid", "nodev", "rprivate", "size=65536", "mode=700"],
    }
    # a second use finds data already there: no copy over it
    Path(db.mountpoint, "seed.txt").write_text("changed by a task")
    task_mounts.prepare(t, image_root, store)
    assert Path(db.mountpoint, "seed.txt").read_text() == "changed by a task"


def test_nocopy_and_symlinked_targets_copy_nothing(tmp_path: Path) -> None:
    image_root = tmp_path / "rootfs"
    (image_root / "data").mkdir(parents=True)
    (image_root / "data/f").write_text("x")
    (image_root / "link").symlink_to(tmp_path / "secret")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret/key").write_text("node's own")
    store = VolumeStore(tmp_path / "volumes")
    mounts = [
        {"Type": "volume", "Source": "aa", "Target": "/data", "VolumeOptions": {"NoCopy": True}},
        {"Type": "volume", "Source": "bb", "Target": "/link"},
    ]
    task_mounts.prepare(task(Mounts=mounts), image_root, store)
    assert not any(Path(store.get("aa").mountpoint).iterdir())
    assert not any(Path(store.get("bb").mountpoint).iterdir())


# ---- the volume store ------------------------------------------------------------------------


def test_volume_store_create_list_remove_in_use_and_prune(tmp_path: Path) -> None:
    users: dict[str, list[str]] = {}
    store = VolumeStore(tmp_path / "volumes", users=lambda: users)
    vol, created = store.create("data", labels={"team": "a"})
    assert created and vol.inspect()["Mountpoint"] == str(tmp_path / "volumes/data/_data")
    assert store.create("data") == (store.get("data"), False)
    anon, _ = store.create(labels={ANONYMOUS_LABEL: ""})
    assert len(anon.name) == 64
    users["data"] = [TASK_ID]
    with pytest.raises(Conflict, match=rf"remove data: volume is in use - \[{TASK_ID}\]"):
        store.remove("data")
    with pytest.raises(NotFound, match="get nope: no such volume"):
        store.remove("nope")
    store.remove("nope", force=True)
    assert volume_ops.list_volumes(store, {"dangling": ["true"]})["Volumes"][0]["Name"] == anon.name
    assert [v["Name"] for v in volume_ops.list_volumes(store, {"label": ["team=a"]})["Volumes"]] == ["data"]
    assert volume_ops.prune_volumes(store, {})["VolumesDeleted"] == [anon.name]  # anonymous only by default
    users.clear()
    assert volume_ops.prune_volumes(store, {"all": ["true"]})["VolumesDeleted"] == ["data"]
    assert store.list() == []


def test_volume_create_refusals(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path / "volumes")
    with pytest.raises(InvalidArgument, match="includes invalid characters"):
        volume_ops.create_volume(store, {"Name": "../etc"})
    with pytest.raises(InvalidArgument, match="'nfs' is not supported"):
        volume_ops.create_volume(store, {"Name": "a", "Driver": "nfs"})
    for opts, message in (
        ({"type": "tmpfs"}, 'missing required option: "device"'),
        ({"device": "/dev/sdz"}, 'missing required option: "type"'),
        ({"o": "size=1m", "type": "tmpfs"}, 'missing required option: "device"'),
        ({"type": "tmpfs", "device": "tmpfs", "mode": "1777"}, 'invalid option: "mode"'),
        ({"type": "nosuchfs", "device": "x"}, 'type "nosuchfs" is not a filesystem this node\'s kernel has'),
        ({"type": "none", "device": "/srv"}, 'type "none" needs o=bind'),
    ):
        with pytest.raises(InvalidArgument) as e:
            volume_ops.create_volume(store, {"Name": "aa", "DriverOpts": opts})
        assert message in str(e.value), (opts, str(e.value))
    assert store.list() == []


def test_volume_with_local_driver_options_keeps_and_shows_them(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path / "volumes")
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=64m,uid=1000"}
    created = volume_ops.create_volume(store, {"Name": "fast", "DriverOpts": opts})
    assert created["Options"] == opts and store.inspect("fast")["Options"] == opts
    assert volume_ops.create_volume(store, {"Name": "plain"})["Options"] is None
    # a later create with other options returns the volume as it is (Docker's)
    assert volume_ops.create_volume(store, {"Name": "fast", "DriverOpts": {**opts, "o": "size=1m"}})["Options"] == opts
    # a task's volume-opt reaches the create the driver makes on first use
    mount = {"Type": "volume", "Source": "fromtask", "Target": "/d",
             "VolumeOptions": {"DriverConfig": {"Options": opts}}}  # fmt: skip
    assert validate_service_spec(spec_with(Mounts=[mount]))["TaskTemplate"]["ContainerSpec"]["Mounts"][0][
        "VolumeOptions"
    ] == {"DriverConfig": {"Options": opts}}
    (vol,) = task_mounts.task_volumes(task(Mounts=[mount]))
    assert vol.options == opts


def test_volume_metadata_is_root_only_as_mobys_opts_json(tmp_path: Path) -> None:
    """The options may hold a mount's password (o=...,password=...)."""
    import stat

    from shoal.runtime.volumes import META

    store = VolumeStore(tmp_path / "volumes")
    store.create("share", driver_opts={"type": "none", "device": str(tmp_path), "o": "bind"})
    d = tmp_path / "volumes" / "share"
    assert stat.S_IMODE((d / META).stat().st_mode) == 0o600
    assert sorted(p.name for p in d.iterdir()) == ["_data", META]  # no temporary file left
    assert store.inspect("share")["Options"]["device"] == str(tmp_path)


def test_mount_options_split_into_flags_and_data_as_moby() -> None:
    from shoal.runtime.volumes import parse_mount_options

    assert parse_mount_options("size=64m,uid=1000") == (0, "size=64m,uid=1000")
    assert parse_mount_options("ro,noexec,size=1m,nosuid") == (0x1 | 0x8 | 0x2, "size=1m")
    assert parse_mount_options("bind") == (0x1000, "")
    assert parse_mount_options("ro,rw") == (0, "")


def test_is_mounted_reads_mountinfo_with_its_escapes(tmp_path: Path) -> None:
    from shoal.runtime.volumes import is_mounted

    info = tmp_path / "mountinfo"
    target = tmp_path / "my vol" / "_data"
    escaped = str(target).replace(" ", "\\040")
    info.write_text(f"22 1 0:5 / / rw - ext4 /dev/sda rw\n99 22 0:51 / {escaped} rw,relatime - tmpfs tmpfs rw\n")
    assert is_mounted(target, str(info))
    assert not is_mounted(tmp_path / "other", str(info))


def test_volume_users_come_from_task_bundles(tmp_path: Path) -> None:
    import json

    (tmp_path / "tasks" / TASK_ID).mkdir(parents=True)
    t = task(Mounts=[{"Type": "volume", "Source": "db", "Target": "/d"}, {"Type": "volume", "Target": "/e"}])
    (tmp_path / "tasks" / TASK_ID / "task.json").write_text(json.dumps(t))
    users = task_mounts.volume_users(tmp_path / "tasks")
    assert users == {"db": [TASK_ID], task_mounts.anonymous_name(TASK_ID, "/e"): [TASK_ID]}


# ---- CLI flags ---------------------------------------------------------------------------------


def parse(argv: list[str], update: bool = False) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    (flags.add_update_flags if update else flags.add_create_flags)(p)
    return p.parse_args(argv)


def test_mount_flag_docker_syntax() -> None:
    assert flags.mount("type=bind,src=/srv,dst=/data,readonly,bind-propagation=rslave") == {
        "Type": "bind",
        "Source": "/srv",
        "Target": "/data",
        "ReadOnly": True,
        "BindOptions": {"Propagation": "rslave"},
    }
    assert flags.mount("source=db,target=/d,volume-nocopy,volume-label=a=b") == {
        "Type": "volume",
        "Source": "db",
        "Target": "/d",
        "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}},
    }
    assert flags.mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770")["TmpfsOptions"] == {
        "SizeBytes": 64 << 20,
        "Mode": 0o1770,
    }
    for bad, message in (("type=bind,src=/x", "target is required"), ("type=tmpfs,dst=/t,volume-nocopy", "cannot mix")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            flags.mount(bad)


def test_create_flags_fill_the_container_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nA=1\n\nFROM_ENV\nB=2\n")
    monkeypatch.setenv("FROM_ENV", "yes")
    args = parse(
        ["--mount", "type=volume,dst=/d", "--dns", "10.0.0.2", "--dns-search", "a.org", "--dns-option", "ndots:1",
         "--host", "db:10.1.2.3", "--sysctl", "net.core.somaxconn=512", "--ulimit", "nofile=1024:2048",
         "--ulimit", "nproc=64", "--env-file", str(env_file)]
    )  # fmt: skip
    container: dict[str, Any] = {"Image": "app:1", "Env": ["B=3"]}
    flags.apply_create(container, args)
    assert container["Env"] == ["A=1", "FROM_ENV=yes", "B=2", "B=3"]
    assert container["DNSConfig"] == {"Nameservers": ["10.0.0.2"], "Search": ["a.org"], "Options": ["ndots:1"]}
    assert container["Hosts"] == ["10.1.2.3 db"]
    assert container["Sysctls"] == {"net.core.somaxconn": "512"}
    assert container["Ulimits"] == [
        {"Name": "nofile", "Soft": 1024, "Hard": 2048},
        {"Name": "nproc", "Soft": 64, "Hard": 64},
    ]
    assert validate_service_spec({"Name": "w", "TaskTemplate": {"ContainerSpec": container}})


def test_host_flag_does_not_clobber_the_global_socket_option() -> None:
    from shoal.cli.main import build_parser

    args = build_parser().parse_args(
        ["-H", "unix:///run/x.sock", "service", "create", "--host", "db:10.1.2.3", "shoal/host", "sleep", "1"]
    )
    assert args.host == "unix:///run/x.sock" and args.extra_hosts == ["10.1.2.3 db"]


def test_update_flags_add_and_remove() -> None:
    container: dict[str, Any] = {
        "Mounts": [{"Type": "volume", "Source": "aa", "Target": "/a"}, {"Type": "tmpfs", "Target": "/t"}],
        "DNSConfig": {"Nameservers": ["10.0.0.2"]},
        "Hosts": ["10.1.2.3 db", "10.1.2.4 cache"],
        "Sysctls": {"net.a": "1"},
        "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 1}],
    }
    args = parse(
        ["--mount-rm", "/t", "--mount-add", "type=volume,src=bb,dst=/a", "--dns-add", "10.0.0.3", "--dns-rm",
         "10.0.0.2", "--host-rm", "db", "--host-add", "web:10.1.2.5", "--sysctl-rm", "net.a", "--sysctl-add",
         "net.b=2", "--ulimit-rm", "nofile", "--ulimit-add", "nproc=5:6"],
        update=True,
    )  # fmt: skip
    flags.apply_update(container, args)
    assert container["Mounts"] == [{"Type": "volume", "Source": "bb", "Target": "/a"}]
    assert container["DNSConfig"] == {"Nameservers": ["10.0.0.3"]}
    assert container["Hosts"] == ["10.1.2.4 cache", "10.1.2.5 web"]
    assert container["Sysctls"] == {"net.b": "2"}
    assert container["Ulimits"] == [{"Name": "nproc", "Soft": 5, "Hard": 6}]


def test_pretty_inspect_lists_mounts_as_docker() -> None:
    from shoal.cli.service_pretty import pretty_service

    mounts = [{"Type": "volume", "Source": "db", "Target": "/d", "ReadOnly": True}]
    text = pretty_service(
        {"ID": "x", "Spec": {"Name": "w", "TaskTemplate": {"ContainerSpec": {"Image": "i", "Mounts": mounts}}}}
    )
    assert "Mounts:\n Target:        /d\n  Source:       db\n  ReadOnly:     true\n  Type: volume\n" in text


# ---- Go templates in mount sources (as Docker: `data-{{.Task.Slot}}`) --------------------------


def test_mount_source_templates_are_checked_at_create() -> None:
    mounts = [
        {"Type": "volume", "Source": "data-{{.Task.Slot}}", "Target": "/d"},
        {"Type": "bind", "Source": "/srv/{{.Service.Name}}", "Target": "/s"},
    ]
    assert [m["Source"] for m in container_of(Mounts=mounts)["Mounts"]] == [
        "data-{{.Task.Slot}}",
        "/srv/{{.Service.Name}}",
    ]
    for source, message in (
        ("data-{{.Task.Nope}}", r"Mounts\[0\]\.Source: invalid template"),
        ("data-{{.Task.Slot", r"Mounts\[0\]\.Source: invalid template"),
        ("bad name", "includes invalid characters"),  # an untemplated name is still checked now
    ):
        with pytest.raises(SpecError, match=message):
            container_of(Mounts=[{"Type": "volume", "Source": source, "Target": "/d"}])


def test_mount_sources_are_rendered_on_the_node(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    store = VolumeStore(tmp_path / "volumes")
    t = task(
        Mounts=[
            {"Type": "volume", "Source": "data-{{.Task.Slot}}", "Target": "/d"},
            {"Type": "bind", "Source": str(tmp_path) + "/{{.Service.Name}}", "Target": "/s"},
        ]
    )
    t |= {"Slot": 3, "ServiceAnnotations": {"Name": "web"}, "NodeID": "node1"}
    out = task_mounts.prepare(t, None, store)
    assert out[0]["source"] == store.get("data-3").mountpoint
    assert out[1]["source"] == str(tmp_path / "web")
    assert [v.name for v in task_mounts.task_volumes(t)] == ["data-3"]
    import json

    (tmp_path / "tasks" / TASK_ID).mkdir(parents=True)
    (tmp_path / "tasks" / TASK_ID / "task.json").write_text(json.dumps(t))
    assert task_mounts.volume_users(tmp_path / "tasks") == {"data-3": [TASK_ID]}
    # a label value that makes no volume name rejects the task with Docker's message
    bad = task(Mounts=[{"Type": "volume", "Source": '{{index .Service.Labels "v"}}', "Target": "/d"}])
    bad |= {"ServiceAnnotations": {"Name": "web", "Labels": {"v": "../etc"}}}
    with pytest.raises(TaskRejected, match="invalid characters for a local volume name"):
        task_mounts.prepare(bad, None, store)


def test_a_name_longer_than_a_directory_name_is_a_400_not_an_os_error(tmp_path: Path) -> None:
    # found by tests/chaos/test_bad_input.py's fuzz: GET /volumes/<300 x "a"> answered 500 (ENAMETOOLONG)
    store = VolumeStore(tmp_path / "volumes")
    long_name = "a" * 300
    for call in (lambda: store.inspect(long_name), lambda: store.remove(long_name), lambda: store.create(long_name)):
        with pytest.raises(InvalidArgument, match="volume name is too long: 300 characters"):
            call()
    assert store.create("a" * 255)[1] is True


def test_system_df_is_where_volumes_carry_usage_data(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from shoal.api.system import _df

    users: dict[str, list[str]] = {"data": [TASK_ID, "t2"]}
    store = VolumeStore(tmp_path / "volumes", users=lambda: users)
    vol, _ = store.create("data")
    (Path(vol.mountpoint) / "blob").write_bytes(b"x" * 5000)
    (Path(vol.mountpoint) / "sub").mkdir()
    (Path(vol.mountpoint) / "sub" / "more").write_bytes(b"y" * 1000)
    store.create("idle")
    # as Docker: no UsageData in /volumes (list or inspect), only in /system/df
    assert "UsageData" not in volume_ops.list_volumes(store, {})["Volumes"][0]
    assert "UsageData" not in store.inspect("data")
    images = SimpleNamespace(list=lambda: [SimpleNamespace(summary=lambda: {"Id": "sha256:a", "Size": 300})])
    df = _df(SimpleNamespace(volumes=store, images=images), {"container", "image", "volume", "build-cache"})
    usage = {v["Name"]: v["UsageData"] for v in df["Volumes"]}
    assert usage == {"data": {"Size": 6000, "RefCount": 2}, "idle": {"Size": 0, "RefCount": 0}}
    assert df["LayersSize"] == 300 and df["Images"][0]["Id"] == "sha256:a"
    assert df["Containers"] == [] and df["BuildCache"] == []
    assert set(_df(SimpleNamespace(volumes=store, images=images), {"volume"})) == {"Volumes"}
