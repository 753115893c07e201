"""Encryption at rest on the testbed (issue 13): three managers write a service whose name and env
hold a marker; every file under each manager's /var/lib/shoal is read back and the marker is
nowhere in clear, although each manager's own (decrypted) snapshot holds it. Restarted managers,
one and then all at once, serve the service from their own decrypted journal and snapshot; one
whose key file is missing refuses to start instead of starting empty."""

from __future__ import annotations

import os
import secrets
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cluster_helpers import HOSTS, api, form_cluster, leader_of, nodes, start_agent, wait_for, wipe_cluster
from shoal.store.atrest.keyfile import PlainKeyFile
from shoal.store.atrest.records import RecordCipher
from shoal.store.atrest.snapshot import open_sealed
from shoal.store.config import DUMP_FILE
from testbed.bed import Testbed

TOKEN = secrets.token_hex(6)
NAME = f"atrest-{TOKEN}"  # the service's name holds the marker
ENV_MARKER = f"envsecret-{TOKEN}"  # and so does an env value
UPDATES = 15  # past --raft-snapshot-entries: every manager writes a snapshot holding the service


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=3, agent_args=["--raft-snapshot-entries", "10"])
    wait_for("three reachable managers and one leader", lambda: all_managers_agree(bed), timeout=30)
    yield bed
    wipe_cluster(bed, "test_store_atrest")


def all_managers_agree(bed: Testbed) -> bool:
    listed = nodes(bed, "swarm00")
    reachable = all((n.get("ManagerStatus") or {}).get("Reachability") == "reachable" for n in listed.values())
    leaders = {leader_of(bed, host) for host in HOSTS}
    return reachable and len(listed) == len(HOSTS) and len(leaders) == 1 and None not in leaders


def state_dir(bed: Testbed, host: str) -> Path:
    return bed.host(host).state_dir / "var"  # the host's /var/lib/shoal


def served_env(bed: Testbed, host: str) -> list[str] | None:
    spec = api(bed, host).get(f"/services/{NAME}")["Spec"]
    return spec["TaskTemplate"]["ContainerSpec"]["Env"]  # type: ignore[no-any-return]


def snapshot_plaintext(bed: Testbed, host: str) -> bytes:
    """The manager's snapshot opened with its own key file, as the manager itself does."""
    var = state_dir(bed, host)
    key = PlainKeyFile(var / "keys" / "raft.dek").load()
    return zlib.decompress(open_sealed(str(var / "raft" / DUMP_FILE), RecordCipher(key)))


def files_holding(directory: Path, markers: list[bytes]) -> list[str]:
    found = []
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = Path(root) / name
            try:
                data = path.read_bytes()
            except (FileNotFoundError, IsADirectoryError, OSError):
                continue  # a temporary file renamed away meanwhile, a socket
            found += [f"{path}: {m.decode()}" for m in markers if m in data]
    return found


def test_the_managers_state_holds_the_service_only_encrypted(cluster: Testbed) -> None:
    started = time.time()
    body = {
        "Name": NAME,
        "Labels": {"note": ENV_MARKER},
        "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host", "Env": [f"ATREST_TOKEN={ENV_MARKER}"]}},
        "Mode": {"Replicated": {"Replicas": 0}},  # no task: no container bundle on disk, only the store
    }
    client = api(cluster, "swarm00")
    client.post("/services/create", body)
    for i in range(UPDATES):
        service = client.get(f"/services/{NAME}")
        spec = dict(service["Spec"], Labels={**service["Spec"]["Labels"], "round": str(i)})
        client.post(f"/services/{NAME}/update", spec, version=service["Version"]["Index"])

    for host in HOSTS:
        dump = state_dir(cluster, host) / "raft" / DUMP_FILE
        wait_for(
            f"a snapshot on {host} that holds the service",
            lambda dump=dump, host=host: (
                dump.exists()
                and dump.stat().st_mtime > started
                and ENV_MARKER.encode() in snapshot_plaintext(cluster, host)
            ),
            timeout=30,
        )
        assert served_env(cluster, host) == [f"ATREST_TOKEN={ENV_MARKER}"]

    markers = [ENV_MARKER.encode(), NAME.encode()]
    leaks = [leak for host in HOSTS for leak in files_holding(state_dir(cluster, host), markers)]
    assert leaks == []
    journal = (state_dir(cluster, "swarm00") / "raft" / "raft.journal").read_bytes()
    assert journal.startswith(b"SHOAL-SEALED-RAFT") and b"shoal/host" not in journal


def test_a_restarted_manager_serves_the_service_from_its_own_state(cluster: Testbed) -> None:
    leader = wait_for("a leader", lambda: leader_of(cluster, "swarm00"))
    follower = next(h for h in HOSTS if h != leader)
    for victim in (follower, leader):
        cluster.stop_agent(victim, kill=True)
        start_agent(cluster, victim)
        wait_for(f"{victim} serves the service again", lambda victim=victim: served_env(cluster, victim), timeout=30)
        wait_for("three reachable managers and one leader", lambda: all_managers_agree(cluster), timeout=30)
    # all at once: nobody can send the state, each replays its own journal and snapshot
    for host in HOSTS:
        cluster.stop_agent(host)
    for host in HOSTS:
        start_agent(cluster, host)
    wait_for("three reachable managers and one leader", lambda: all_managers_agree(cluster), timeout=45)
    for host in HOSTS:
        assert served_env(cluster, host) == [f"ATREST_TOKEN={ENV_MARKER}"]
        assert api(cluster, host).get(f"/services/{NAME}")["Spec"]["Labels"]["round"] == str(UPDATES - 1)


def test_a_manager_without_its_key_refuses_to_start_instead_of_starting_empty(cluster: Testbed) -> None:
    host = "swarm02"
    key = state_dir(cluster, host) / "keys" / "raft.dek"
    away = key.with_name("raft.dek.away")
    cluster.stop_agent(host)
    key.rename(away)
    try:
        start_agent(cluster, host)
        swarm = api(cluster, host).get("/info")["Swarm"]
        assert swarm["LocalNodeState"] == "error"
        assert f"data key file {key.relative_to(state_dir(cluster, host))}" in swarm["Error"].replace(
            "/var/lib/shoal/", ""
        )
        assert "refusing to start with an empty state" in swarm["Error"]
        assert not key.exists()  # no new key was made for data it cannot read
    finally:
        cluster.stop_agent(host)
        away.rename(key)
    start_agent(cluster, host)
    wait_for(f"{host} serves the service with its key back", lambda: served_env(cluster, host), timeout=30)
    wait_for("three reachable managers and one leader", lambda: all_managers_agree(cluster), timeout=30)
