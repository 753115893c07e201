"""Cluster core on the testbed: init, join, node lifecycle, failover, partitions, security, bad input.

Each test asks for the cluster it needs (`fresh_agents`, `one_manager`, `three_managers`): the fixture
reuses the cluster the previous test left when it has that shape and forms it anew otherwise, so the
tests pass in any order (`pytest -p randomly`, or the node IDs given in reverse order).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from integration.cluster_helpers import (
    HOSTS,
    api,
    certs,
    cli,
    form_cluster,
    leader_of,
    nodes,
    save_logs,
    start_agent,
    tls_call,
    wait_for,
)
from shoal.cli.errors import APIError, CLIError
from testbed.bed import Testbed

MANAGER = "10.213.0.10:2377"


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    """The module's testbed; the agents' logs are kept and their state wiped at the end."""
    yield bed
    save_logs(bed, "test_cluster")
    for host in HOSTS:
        bed.stop_agent(host)
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])


@pytest.fixture
def fresh_agents(cluster: Testbed) -> Testbed:
    """Every agent running with empty state, in no swarm."""
    for host in HOSTS:
        cluster.stop_agent(host)
        cluster.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
        start_agent(cluster, host)
    return cluster


def has_shape(bed: Testbed, managers: int) -> bool:
    """The swarm is whole: every host a ready, active node; swarm00 plus the next `managers - 1`
    hosts are reachable managers, the others workers; every manager sees the same single leader."""
    try:
        listed = nodes(bed, "swarm00")
        if sorted(listed) != HOSTS:
            return False
        for i, host in enumerate(HOSTS):
            node = listed[host]
            role = "manager" if i < managers else "worker"
            if node["Status"]["State"] != "ready" or node["Spec"]["Availability"] != "active":
                return False
            if node["Spec"]["Role"] != role or (role == "worker") != ("ManagerStatus" not in node):
                return False
            if role == "manager" and node["ManagerStatus"]["Reachability"] != "reachable":
                return False
        leaders = {leader_of(bed, host) for host in HOSTS[:managers]}
        return len(leaders) == 1 and None not in leaders
    except (APIError, CLIError, OSError, KeyError):
        return False


def cluster_of(bed: Testbed, managers: int) -> Testbed:
    if not has_shape(bed, managers):
        form_cluster(bed, managers=managers)
        wait_for(f"a swarm of {managers} manager(s)", lambda: has_shape(bed, managers), timeout=30)
    return bed


@pytest.fixture
def one_manager(cluster: Testbed) -> Testbed:
    """swarm00 the only manager (and leader), swarm01 and swarm02 workers, all ready and active."""
    return cluster_of(cluster, 1)


@pytest.fixture
def three_managers(cluster: Testbed) -> Testbed:
    """Every host a reachable manager; one leader."""
    return cluster_of(cluster, 3)


def join_token(bed: Testbed, role: str, host: str = "swarm00") -> str:
    return api(bed, host).get("/swarm")["JoinTokens"][role.capitalize()]


@pytest.mark.usefixtures("fresh_agents")
def test_init_with_interface_name_and_join_workers(cluster: Testbed) -> None:
    rc, out, err = cli(cluster, "swarm00", "swarm", "init", "--advertise-addr", "eth0")
    assert rc == 0, err
    assert "Swarm initialized: current node (" in out and "--token SWMTKN-1-" in out and MANAGER in out
    token = join_token(cluster, "worker")
    for host in ("swarm01", "swarm02"):
        rc, out, err = cli(cluster, host, "swarm", "join", "--token", token, MANAGER)
        assert rc == 0, err
        assert "This node joined a swarm as a worker." in out
    listed = wait_for(
        "3 ready nodes",
        lambda: (
            (n := nodes(cluster, "swarm00"))
            and len(n) == 3
            and all(x["Status"]["State"] == "ready" for x in n.values())
            and n
        ),
    )
    assert listed["swarm00"]["ManagerStatus"]["Leader"] is True
    assert "ManagerStatus" not in listed["swarm01"] and listed["swarm01"]["Spec"]["Role"] == "worker"


@pytest.mark.usefixtures("one_manager")
def test_node_ls_from_every_host_marks_local_node(cluster: Testbed) -> None:
    for host in HOSTS:
        rc, out, err = cli(cluster, host, "node", "ls")
        assert rc == 0, err
        lines = out.strip().splitlines()
        assert lines[0].split()[:5] == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER"]
        mine = [line for line in lines[1:] if " * " in line or line.split()[0].endswith("*")]
        assert len(mine) == 1 and host in mine[0]
        assert any("swarm00" in line and "Leader" in line for line in lines)


@pytest.mark.usefixtures("one_manager")
def test_join_token_command_and_rotation(cluster: Testbed) -> None:
    rc, out, _ = cli(cluster, "swarm00", "swarm", "join-token", "worker")
    assert rc == 0 and "shoal swarm join --token SWMTKN-1-" in out and MANAGER in out
    old = join_token(cluster, "worker")
    rc, out, _ = cli(cluster, "swarm00", "swarm", "join-token", "--rotate", "-q", "worker")
    assert rc == 0 and out.strip() != old and out.strip().startswith("SWMTKN-1-")
    # the old token stops working at once
    status, body = tls_call(
        MANAGER,
        "/shoal/join",
        method="POST",
        ca_file=certs(cluster, "swarm00") / "swarm-root-ca.crt",
        body={"Token": old, "CSR": "x", "Hostname": "evil", "AdvertiseIP": "10.213.0.99"},
    )
    assert status == 403 and "join token" in body["message"]


@pytest.mark.usefixtures("one_manager")
def test_join_refusals(cluster: Testbed) -> None:
    token = join_token(cluster, "worker")
    # joining again from a node that is in a swarm
    with pytest.raises(APIError) as exc:
        api(cluster, "swarm01").post("/swarm/join", {"JoinToken": token, "RemoteAddrs": [MANAGER]})
    assert exc.value.status == 503 and "already part of a swarm" in exc.value.message
    # a token whose CA digest does not match the cluster's CA: refused before any secret is sent
    digest = token.split("-")[2]
    tampered = token.replace(digest, ("1" if digest[0] != "1" else "2") + digest[1:])
    with pytest.raises(APIError) as exc:
        api(cluster, "swarm01").post("/swarm/join", {"JoinToken": tampered, "RemoteAddrs": [MANAGER]})
    assert "already part of a swarm" in exc.value.message and "different cluster" in exc.value.message
    # malformed input
    for body in ({"RemoteAddrs": [MANAGER]}, {"JoinToken": token}, {"JoinToken": "nonsense", "RemoteAddrs": [MANAGER]}):
        with pytest.raises(APIError) as exc:
            api(cluster, "swarm01").post("/swarm/join", body)
        assert exc.value.status in (400, 503)


@pytest.mark.usefixtures("one_manager")
def test_cluster_port_needs_a_client_certificate(cluster: Testbed) -> None:
    ca_file = certs(cluster, "swarm00") / "swarm-root-ca.crt"
    status, body = tls_call(MANAGER, "/nodes", ca_file=ca_file)
    assert status == 403 and "client certificate" in body["message"]
    status, body = tls_call(MANAGER, "/shoal/heartbeat", method="POST", body={}, ca_file=ca_file)
    assert status == 403
    # a worker certificate may read but not call manager-only endpoints
    worker_certs = certs(cluster, "swarm01")
    status, body = tls_call(MANAGER, "/nodes", ca_file=ca_file, cert_host_dir=worker_certs)
    assert status == 200 and len(body) == 3
    status, body = tls_call(
        MANAGER,
        "/shoal/raft/join",
        method="POST",
        ca_file=ca_file,
        cert_host_dir=worker_certs,
        body={"RaftAddr": "10.213.0.11:2378", "Addr": "10.213.0.11:2377"},
    )
    assert status == 403 and "manager" in body["message"]
    # the CA certificate itself is public (it is pinned by the token's digest)
    status, body = tls_call(MANAGER, "/shoal/ca")
    assert status == 200 and "BEGIN CERTIFICATE" in body["CACertificate"]


@pytest.mark.usefixtures("one_manager")
def test_bad_input_is_refused_and_changes_nothing(cluster: Testbed) -> None:
    client = api(cluster, "swarm00")
    before = client.get("/nodes/swarm01")
    version = before["Version"]["Index"]
    cases = [
        ("/nodes/nosuchnode/update", {"Role": "worker", "Availability": "active"}, {"version": version}, 404),
        ("/nodes/swarm01/update", {"Role": "worker", "Availability": "sideways"}, {"version": version}, 400),
        ("/nodes/swarm01/update", {"Role": "king", "Availability": "active"}, {"version": version}, 400),
        ("/nodes/swarm01/update", {"Role": "worker", "Availability": "drain"}, {"version": version - 1}, 409),
        ("/nodes/swarm01/update", {"Role": "worker", "Availability": "drain"}, {}, 400),
        ("/nodes/swarm01/update", {"Role": "worker", "Labels": {"a": 1}}, {"version": version}, 400),
    ]
    for path, body, query, status in cases:
        with pytest.raises(APIError) as exc:
            client.post(path, body, **query)
        assert exc.value.status == status, (path, body, exc.value.message)
        assert exc.value.message
    # malformed JSON
    import http.client
    import socket

    conn = http.client.HTTPConnection("localhost")
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(cluster.host("swarm00").socket_path))
    conn.sock = sock
    conn.request(
        "POST",
        f"/nodes/swarm01/update?version={version}",
        body=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    assert resp.status == 400 and b"malformed JSON" in resp.read()
    conn.close()
    after = client.get("/nodes/swarm01")
    assert after["Version"] == before["Version"] and after["Spec"] == before["Spec"]
    # CLI: bad availability is refused with a message and a non-zero exit
    rc, _, err = cli(cluster, "swarm00", "node", "update", "--availability", "sideways", "swarm01")
    assert rc != 0 and "sideways" in err


@pytest.mark.usefixtures("one_manager")
def test_drain_pause_active_and_labels(cluster: Testbed) -> None:
    for availability in ("drain", "pause", "active"):
        rc, _, err = cli(cluster, "swarm00", "node", "update", "--availability", availability, "swarm01")
        assert rc == 0, err
        assert nodes(cluster, "swarm00")["swarm01"]["Spec"]["Availability"] == availability
    rc, _, err = cli(
        cluster, "swarm00", "node", "update", "--label-add", "zone=a", "--label-add", "disk=ssd", "swarm01"
    )
    assert rc == 0, err
    rc, _, err = cli(cluster, "swarm00", "node", "update", "--label-rm", "disk", "swarm01")
    assert rc == 0, err
    assert nodes(cluster, "swarm02")["swarm01"]["Spec"]["Labels"] == {"zone": "a"}  # read through a worker


@pytest.mark.usefixtures("one_manager")
def test_remove_refusals(cluster: Testbed) -> None:
    rc, _, err = cli(cluster, "swarm00", "node", "rm", "swarm01")
    assert rc != 0 and "is not down" in err
    rc, _, err = cli(cluster, "swarm00", "node", "rm", "swarm00")
    assert rc != 0 and "demoted" in err
    rc, _, err = cli(cluster, "swarm00", "node", "demote", "swarm00")
    assert rc != 0 and "last manager" in err
    assert len(nodes(cluster, "swarm00")) == 3


@pytest.mark.usefixtures("one_manager")
def test_worker_cannot_write(cluster: Testbed) -> None:
    rc, _, err = cli(cluster, "swarm01", "node", "update", "--availability", "drain", "swarm02")
    assert rc != 0 and "not a swarm manager" in err


@pytest.mark.usefixtures("one_manager")
def test_promote_both_workers(cluster: Testbed) -> None:
    rc, _out, err = cli(cluster, "swarm00", "node", "promote", "swarm01", "swarm02")
    assert rc == 0, err

    def all_reachable() -> dict | None:
        n = nodes(cluster, "swarm00")
        statuses = [(x.get("ManagerStatus") or {}).get("Reachability") for x in n.values()]
        return n if statuses == ["reachable"] * 3 else None

    wait_for("3 reachable managers", all_reachable, timeout=30)
    for host in HOSTS:
        wait_for(
            f"{host} sees one leader",
            lambda h=host: sum(1 for x in nodes(cluster, h).values() if x["ManagerStatus"]["Leader"]) == 1,
        )
        info = api(cluster, host).get("/info")
        assert info["Swarm"]["ControlAvailable"] is True
        # tasks are OCI containers: Docker's runtime fields name runc (this host's cgroups refuse crun)
        assert info["Shoal"]["TaskRuntime"] == "oci" and info["DefaultRuntime"] == "runc"
        assert info["Runtimes"] == {"runc": {"path": "/usr/sbin/runc"}}


@pytest.mark.usefixtures("three_managers")
def test_kill_leader_elects_another_and_loses_nothing(cluster: Testbed) -> None:
    """Invariants only: another manager becomes leader, the write acknowledged before the kill and
    one made after it are on every manager, and all agree on one leader. How fast: bench/raft_failover.py."""
    old = leader_of(cluster, "swarm00")
    assert old is not None
    survivors = [h for h in HOSTS if h != old]
    client = api(cluster, survivors[0])
    node = client.get(f"/nodes/{survivors[1]}")
    spec = dict(node["Spec"], Labels={**node["Spec"]["Labels"], "before": "kill"})
    client.post(f"/nodes/{survivors[1]}/update", spec, version=node["Version"]["Index"])
    cluster.stop_agent(old, kill=True)

    def new_leader() -> str | None:
        seen = {leader_of(cluster, host) for host in survivors}
        return seen.pop() if len(seen) == 1 and None not in seen and old not in seen else None

    elected = wait_for("both survivors agree on a new leader", new_leader, timeout=60)
    assert elected in survivors
    node = client.get(f"/nodes/{survivors[1]}")
    spec = dict(node["Spec"], Labels={**node["Spec"]["Labels"], "after": "kill"})
    client.post(f"/nodes/{survivors[1]}/update", spec, version=node["Version"]["Index"])
    # restart it: it comes back Reachable and has everything
    start_agent(cluster, old)
    wait_for(
        f"{old} reachable again",
        lambda: nodes(cluster, survivors[0])[old]["ManagerStatus"]["Reachability"] == "reachable",
        timeout=30,
    )
    labels = wait_for(
        "replicated labels on the restarted manager",
        lambda: (lab := nodes(cluster, old)[survivors[1]]["Spec"]["Labels"]).get("after") and lab,
    )
    assert labels["before"] == "kill" and labels["after"] == "kill"
    agreed = wait_for(
        "every manager names the same single leader",
        lambda: len(seen := {leader_of(cluster, host) for host in HOSTS}) == 1 and None not in seen and seen,
    )
    assert agreed <= set(HOSTS)
    for host in HOSTS:  # and no node list shows two
        assert sum(1 for n in nodes(cluster, host).values() if n["ManagerStatus"]["Leader"]) == 1


@pytest.mark.usefixtures("three_managers")
def test_minority_manager_refuses_writes_then_catches_up(cluster: Testbed) -> None:
    leader = wait_for("a leader", lambda: leader_of(cluster, "swarm00"))
    cut = next(h for h in HOSTS if h != leader)
    others = [h for h in HOSTS if h != cut]
    cluster.set_link(cut, up=False)
    try:
        time.sleep(1.5)  # the cut manager's leader lease runs out
        node = api(cluster, cut).get(f"/nodes/{cut}")
        spec = dict(node["Spec"], Labels={**node["Spec"]["Labels"], "cut": "yes"})
        with pytest.raises(APIError) as exc:  # refused, not left hanging (the client gives up after 30 s)
            api(cluster, cut).post(f"/nodes/{cut}/update", spec, version=node["Version"]["Index"])
        assert exc.value.status == 503 and "no quorum" in exc.value.message
        assert api(cluster, cut).get("/nodes")  # reads still answer
        # the majority goes on
        node = api(cluster, others[0]).get(f"/nodes/{others[1]}")
        spec = dict(node["Spec"], Labels={**node["Spec"]["Labels"], "majority": "wrote"})
        api(cluster, others[0]).post(f"/nodes/{others[1]}/update", spec, version=node["Version"]["Index"])
        wait_for(
            f"{cut} unreachable",
            lambda: nodes(cluster, others[0])[cut]["ManagerStatus"]["Reachability"] == "unreachable",
        )
    finally:
        cluster.set_link(cut, up=True)
    wait_for(
        f"{cut} catches up",
        lambda: nodes(cluster, cut)[others[1]]["Spec"]["Labels"].get("majority") == "wrote",
        timeout=15,
    )
    wait_for(
        f"{cut} reachable",
        lambda: nodes(cluster, others[0])[cut]["ManagerStatus"]["Reachability"] == "reachable",
        timeout=15,
    )


@pytest.mark.usefixtures("three_managers")
def test_demote_remove_and_rejoin_with_fresh_state(cluster: Testbed) -> None:
    rc, _, err = cli(cluster, "swarm00", "node", "demote", "swarm02")
    assert rc == 0, err
    wait_for("swarm02 demoted", lambda: "ManagerStatus" not in nodes(cluster, "swarm00")["swarm02"], timeout=20)
    wait_for(
        "swarm02 acts as a worker",
        lambda: api(cluster, "swarm02").get("/info")["Swarm"]["ControlAvailable"] is False,
        timeout=20,
    )
    old_id = nodes(cluster, "swarm00")["swarm02"]["ID"]
    old_cert = certs(cluster, "swarm02")
    saved = {p.name: p.read_bytes() for p in old_cert.iterdir()}
    # leave, then remove it from the cluster once it is down
    rc, _, err = cli(cluster, "swarm02", "swarm", "leave")
    assert rc == 0, err
    wait_for("swarm02 down", lambda: nodes(cluster, "swarm00")["swarm02"]["Status"]["State"] == "down", timeout=10)
    rc, _, err = cli(cluster, "swarm00", "node", "rm", "swarm02")
    assert rc == 0, err
    assert "swarm02" not in nodes(cluster, "swarm00")
    # the removed node's certificate is refused at the cluster port
    keep = cluster.host("swarm02").state_dir / "removed-certs"
    keep.mkdir(exist_ok=True)
    for name, data in saved.items():
        (keep / name).write_bytes(data)
    status, body = tls_call(MANAGER, "/nodes", ca_file=keep / "swarm-root-ca.crt", cert_host_dir=keep)
    assert status == 403 and "removed" in body["message"]
    # rejoin with fresh state: a new node ID
    rc, _out, err = cli(cluster, "swarm02", "swarm", "join", "--token", join_token(cluster, "worker"), MANAGER)
    assert rc == 0, err
    fresh = wait_for("swarm02 back", lambda: nodes(cluster, "swarm00").get("swarm02"))
    assert fresh["ID"] != old_id


@pytest.mark.usefixtures("one_manager")
def test_docker_sdk_talks_to_a_manager(cluster: Testbed) -> None:
    import docker  # requirements-dev.txt: a missing SDK fails the test

    client = docker.DockerClient(base_url=f"unix://{cluster.host('swarm00').socket_path}")  # negotiates via /version
    assert client.swarm.attrs["ID"]
    listed = client.nodes.list()
    assert {n.attrs["Description"]["Hostname"] for n in listed} == set(HOSTS)
    node = next(n for n in listed if n.attrs["Description"]["Hostname"] == "swarm01")
    spec = dict(node.attrs["Spec"], Labels={"sdk": "yes"})
    assert node.update(spec)
    node.reload()
    assert node.attrs["Spec"]["Labels"] == {"sdk": "yes"}
