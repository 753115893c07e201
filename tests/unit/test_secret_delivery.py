"""Secret delivery: which payloads a node gets (pure), and the worker's files on a task tmpfs."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest

from shoal.manager.assignments import assignments
from shoal.manager.events import ClusterEvents
from shoal.manager.secretdelivery import payloads_for
from shoal.model.secret import CONFIG, SECRET, new_object
from shoal.runtime import secretfiles
from shoal.runtime.base import TaskRejected
from shoal.runtime.oci import bundle
from shoal.store.changes import Change
from unit.test_control_race import StateStore

B64 = base64.b64encode(b"hunter2").decode()
SECRET_OBJ = new_object(SECRET, "s" * 25, {"Name": "pw", "Labels": {}, "Data": B64}, "now")
CONFIG_OBJ = new_object(CONFIG, "c" * 25, {"Name": "conf", "Labels": {}, "Data": B64}, "now")
OTHER = new_object(SECRET, "o" * 25, {"Name": "other", "Labels": {}, "Data": B64}, "now")


def task(desired: str = "running", state: str = "assigned") -> dict:
    refs = [{"SecretID": "s" * 25, "SecretName": "pw", "File": {"Name": "pw", "UID": "0", "GID": "0", "Mode": 0o400}}]
    cfgs = [
        {
            "ConfigID": "c" * 25,
            "ConfigName": "conf",
            "File": {"Name": "/etc/app.conf", "UID": "1", "GID": "2", "Mode": 0o444},
        }
    ]
    return {
        "ID": "t" * 25,
        "DesiredState": desired,
        "Status": {"State": state},
        "Spec": {"ContainerSpec": {"Image": "x", "Secrets": refs, "Configs": cfgs}},
    }


def test_a_node_gets_only_what_its_live_tasks_use() -> None:
    objects = [SECRET_OBJ, CONFIG_OBJ, OTHER]
    assert payloads_for([task()], objects) == {"Secrets": {"s" * 25: B64}, "Configs": {"c" * 25: B64}}
    assert payloads_for([task(desired="shutdown")], objects) == {}
    assert payloads_for([task(state="failed")], objects) == {}
    assert payloads_for([{"ID": "x", "DesiredState": "running", "Spec": {"ContainerSpec": {}}}], objects) == {}


def test_files_land_at_docker_targets_and_bind_read_only() -> None:
    payloads = secretfiles.Payloads()
    payloads.replace(payloads_for([task()], [SECRET_OBJ, CONFIG_OBJ]))
    assert "hunter2" not in repr(payloads)
    files = secretfiles.files_for(task(), payloads)
    assert [(f.target, f.data, f.uid, f.gid, f.mode) for f in files] == [
        ("/run/secrets/pw", b"hunter2", 0, 0, 0o400),
        ("/etc/app.conf", b"hunter2", 1, 2, 0o444),
    ]
    binds = secretfiles.bindings(files, Path("/run/shoal/secrets/t"))
    plan = bundle.Plan("t" * 25, ["sh"], [], "/", 0, 0, (), "h", "/ns", "/d", file_binds=binds)
    mounts = {m["destination"]: m for m in bundle.mounts(plan)}
    assert mounts["/run/secrets/pw"]["source"] == "/run/shoal/secrets/t/000"
    assert "ro" in mounts["/etc/app.conf"]["options"]
    payloads.replace({})
    with pytest.raises(TaskRejected, match="secret pw was not delivered"):
        secretfiles.files_for(task(), payloads)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_files_are_written_to_a_tmpfs_and_gone_with_it(tmp_path: Path) -> None:
    payloads = secretfiles.Payloads()
    payloads.replace(payloads_for([task()], [SECRET_OBJ, CONFIG_OBJ]))
    files = secretfiles.files_for(task(), payloads)
    where = tmp_path / "secrets" / "t"
    secretfiles.materialise(where, files)
    try:
        assert os.path.ismount(where)
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        assert any(line.split()[1] == str(where) and line.split()[2] == "tmpfs" for line in mounts)
        st = os.stat(secretfiles.host_path(where, 1))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1, 2, 0o444)
        assert secretfiles.host_path(where, 0).read_bytes() == b"hunter2"
        secretfiles.materialise(where, files)  # again (a prepare retried): same mount, same files
    finally:
        secretfiles.release(where)
    assert not where.exists()


class _Sub:
    def close(self) -> None:
        pass


class _AssignmentStore(StateStore):
    """The state machine with what `assignments()` reads of a live store."""

    epoch = 1

    @property
    def applied_index(self) -> int:
        return self.index

    def notice(self, loop: object = None) -> _Sub:
        return _Sub()


def test_each_node_answer_carries_only_its_tasks_payloads() -> None:
    store = _AssignmentStore()
    store.commit([Change(op="create", kind=o["Kind"], obj=o) for o in (SECRET_OBJ, CONFIG_OBJ, OTHER)])
    mine = {**task(), "NodeID": "n1", "ServiceID": "s", "Version": {"Index": 0}}
    store.commit([Change(op="create", kind="task", obj=mine)])
    answer = asyncio.run(assignments(store, "n1", None, 0))
    assert answer["Payloads"] == {"Secrets": {"s" * 25: B64}, "Configs": {"c" * 25: B64}}
    assert asyncio.run(assignments(store, "n2", None, 0))["Payloads"] == {}


def test_secret_and_config_events_name_them_without_data() -> None:
    feed = ClusterEvents()
    created = feed.translate("secret", "create", SECRET_OBJ)
    assert created is not None and (created["Type"], created["Action"]) == ("secret", "create")
    assert created["Actor"] == {"ID": "s" * 25, "Attributes": {"name": "pw"}}
    removed = feed.translate("config", "delete", CONFIG_OBJ)
    assert removed is not None and (removed["Type"], removed["Action"]) == ("config", "remove")
    assert B64 not in str(created) + str(removed)
