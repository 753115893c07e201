"""The node dataplane on real kernels: three testbed hosts, fake task namespaces, one Dataplane
per host (driven by test_dataplane_driver.py), traffic only between these namespaces."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from integration.test_dataplane_driver import Driver, DriverError
from shoal.net.model import NetAttachment, Peer, Published, ServiceLB, mac_for
from testbed.bed import Testbed

pytestmark = pytest.mark.integration

HOSTS = {"swarm00": "10.213.0.10", "swarm01": "10.213.0.11", "swarm02": "10.213.0.12"}
NET_A = {"network_id": "dpnetaaaaaaaaaaaaaaaaaaaa", "vni": 4097, "subnet": "10.0.1.0/24", "gateway": "10.0.1.1"}
NET_I = {
    "network_id": "dpnetiiiiiiiiiiiiiiiiiiii",
    "vni": 4098,
    "subnet": "10.0.2.0/24",
    "gateway": "10.0.2.1",
    "internal": True,
}
INGRESS = {
    "network_id": "dpingressxxxxxxxxxxxxxxxx",
    "vni": 4096,
    "subnet": "10.255.0.0/16",
    "gateway": "10.255.0.1",
    "ingress": True,
}
SBOX_IP = {"swarm00": "10.255.0.2", "swarm01": "10.255.0.3", "swarm02": "10.255.0.4"}
MESH_PORT, HOST_PORT = 30080, 31080


def att(net: dict[str, object], ip: str) -> NetAttachment:
    prefix = str(net["subnet"]).split("/")[1]
    return NetAttachment(address=f"{ip}/{prefix}", **net)  # type: ignore[arg-type]


@dataclass
class Task:
    id: str
    host: str
    attachments: list[NetAttachment]
    serve: bool = False

    @property
    def netns(self) -> str:
        return f"task-{self.id}"

    @property
    def path(self) -> str:
        return f"/run/netns/{self.netns}"


TASKS = [
    Task("web1", "swarm00", [att(INGRESS, "10.255.0.5"), att(NET_A, "10.0.1.5")], serve=True),
    Task("web2", "swarm01", [att(INGRESS, "10.255.0.6"), att(NET_A, "10.0.1.6")], serve=True),
    Task("client", "swarm01", [att(NET_A, "10.0.1.7")]),
    Task("lonely", "swarm02", [att(NET_I, "10.0.2.5")]),
    Task("lonely2", "swarm00", [att(NET_I, "10.0.2.6")], serve=True),
    Task("plain", "swarm02", [], serve=True),  # on no network: only the gateway leg
]


@dataclass
class Cluster:
    bed: Testbed
    drivers: dict[str, Driver]
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def sh(self, host: str, cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.bed.run(host, ["sh", "-c", cmd], timeout=timeout)

    def in_task(self, task: Task, cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.sh(task.host, f"ip netns exec {task.netns} {cmd}", timeout=timeout)

    def peers(self, host: str, network_id: str) -> list[Peer]:
        out = []
        for t in TASKS:
            for a in t.attachments:
                if a.network_id == network_id and t.host != host:
                    out.append(Peer(network_id, a.ip, a.mac, HOSTS[t.host]))
        if network_id == INGRESS["network_id"]:
            out += [Peer(network_id, ip, mac_for(ip), HOSTS[h]) for h, ip in SBOX_IP.items() if h != host]
        return out

    def sync_peers(self) -> None:
        for host, d in self.drivers.items():
            for net in (NET_A, NET_I, INGRESS):
                d.call("set_peers", network_id=net["network_id"], peers=self.peers(host, str(net["network_id"])))


def task(task_id: str) -> Task:
    return next(t for t in TASKS if t.id == task_id)


def ctl_curl(url: str, timeout: float = 3) -> subprocess.CompletedProcess[str]:
    """curl from the controller namespace (the client outside the cluster)."""
    return subprocess.run(
        ["ip", "netns", "exec", "shoal-ctl", "curl", "-s", "-m", str(timeout), url],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )


def wait_until(what: str, probe: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Cluster]:
    drivers = {h: Driver(bed, h, ip) for h, ip in HOSTS.items()}
    c = Cluster(bed, drivers)
    try:
        for t in TASKS:
            c.sh(t.host, f"ip netns add {t.netns} && ip netns exec {t.netns} ip link set lo up")
        t0 = time.monotonic()
        for t in TASKS:
            drivers[t.host].call("attach", task_id=t.id, task_netns=t.path, attachments=t.attachments)
        c.sync_peers()
        print(f"attach + peers for {len(TASKS)} tasks: {time.monotonic() - t0:.2f} s")
        for t in TASKS:
            if t.serve:
                argv = ["ip", "netns", "exec", t.netns, "python", "-m", "shoal.runtime.hello_app", "8080"]
                c.servers.append(subprocess.Popen(bed.exec_argv(t.host, argv), start_new_session=True))
        for t in TASKS:
            if t.serve:
                ip = t.attachments[0].ip if t.attachments else "127.0.0.1"
                wait_until(
                    f"{t.id} serving", lambda t=t, ip=ip: c.in_task(t, f"curl -s -m 1 {ip}:8080").returncode == 0
                )
        yield c
    finally:
        for p in c.servers:
            # each server is one process (nsenter, env and ip netns exec all exec): its own group
            with_suppressed(lambda p=p: os.killpg(p.pid, signal.SIGTERM))
            with_suppressed(lambda p=p: p.wait(timeout=10))
        for d in drivers.values():
            with_suppressed(lambda d=d: d.call("cleanup"))
            d.close()
        for t in TASKS:
            c.sh(t.host, f"ip netns del {t.netns} 2>/dev/null || true")


def with_suppressed(fn: object) -> None:
    with contextlib.suppress(Exception):
        fn()  # type: ignore[operator]


def test_devices_as_libnetwork_lays_them_out(cluster: Cluster) -> None:
    web1 = task("web1")
    links = cluster.in_task(web1, "ip -o link show").stdout
    assert "eth0" in links and "eth1" in links and "eth2" in links and "mtu 1450" in links
    addrs = cluster.in_task(web1, "ip -o -4 addr show").stdout
    assert "10.255.0.5/16" in addrs and "10.0.1.5/24" in addrs and "172.18." in addrs
    assert "default via 172.18.0.1 dev eth2" in cluster.in_task(web1, "ip route").stdout
    assert cluster.in_task(web1, "cat /proc/sys/net/ipv6/conf/all/disable_ipv6").stdout.strip() == "1"
    sandbox = "1-" + str(NET_A["network_id"])[:10]
    assert sandbox in cluster.sh("swarm00", "ip netns list").stdout
    details = cluster.sh("swarm00", f"ip netns exec {sandbox} ip -d -o link show").stdout
    assert "vxlan id 4097" in details and "dstport 4789" in details and "nolearning" in details
    assert "proxy" in details and "local 10.213.0.10" in details
    br = cluster.sh("swarm00", f"ip netns exec {sandbox} ip -o -4 addr show dev br0").stdout
    assert "10.0.1.1/24" in br
    fdb = cluster.sh("swarm00", f"ip netns exec {sandbox} bridge fdb show dev vxlan4097").stdout
    assert "02:42:0a:00:01:06 dst 10.213.0.11" in fdb and "00:00:00:00:00:00 dst 10.213.0.11" in fdb
    neigh = cluster.sh("swarm00", f"ip netns exec {sandbox} ip neigh show dev vxlan4097").stdout
    assert "10.0.1.7 lladdr 02:42:0a:00:01:07 PERMANENT" in neigh
    assert "shoal_gw" in cluster.sh("swarm00", "nft list tables").stdout
    assert cluster.drivers["swarm00"].call("backend") == "nftables"


def test_ping_and_tcp_across_hosts(cluster: Cluster) -> None:
    client = task("client")  # swarm01
    assert cluster.in_task(client, "ping -c 2 -W 2 10.0.1.5").returncode == 0
    out = cluster.in_task(client, "curl -s -m 3 http://10.0.1.5:8080/").stdout
    assert out.strip() == "Hello World! from 10.255.0.5"  # web1's first interface is on ingress
    # same host, through br0 only
    assert cluster.in_task(client, "ping -c 1 -W 2 10.0.1.6").returncode == 0


def test_full_size_packets_with_df_pass(cluster: Cluster) -> None:
    client = task("client")
    ok = cluster.in_task(client, "ping -c 2 -W 2 -M do -s 1422 10.0.1.5")  # 1422 + 28 = 1450
    assert ok.returncode == 0, ok.stdout + ok.stderr
    too_big = cluster.in_task(client, "ping -c 1 -W 2 -M do -s 1423 10.0.1.5")
    assert too_big.returncode != 0


def test_vip_round_robin_over_backends_on_two_hosts(cluster: Cluster) -> None:
    client = task("client")
    svc = ServiceLB("websvc00000000000000000000", str(NET_A["network_id"]), "10.0.1.2", [(8080, "tcp")])
    services = [
        ServiceLB(svc.service_id, svc.network_id, svc.vip, svc.ports, ["10.0.1.5", "10.0.1.6"]),
        ServiceLB("emptysvc000000000000000000", svc.network_id, "10.0.1.3", [(8080, "tcp")], []),
        ServiceLB("rrsvc0000000000000000000000", svc.network_id, None, [], ["10.0.1.5"], mode="dnsrr"),
    ]
    cluster.drivers["swarm01"].call("program_task_lb", task_netns=client.path, services=services)
    seen = [cluster.in_task(client, "curl -s -m 3 http://10.0.1.2:8080/").stdout.strip() for _ in range(4)]
    assert sorted(set(seen)) == ["Hello World! from 10.255.0.5", "Hello World! from 10.255.0.6"], seen
    # a port the service does not declare still reaches it (Docker's VIP forwards every port)
    assert cluster.in_task(client, "ping -c 1 -W 2 10.0.1.2").returncode == 0
    # no backend: refused at once rather than a timeout
    refused = cluster.in_task(client, "curl -s -m 3 -o /dev/null -w '%{http_code}' http://10.0.1.3:8080/")
    assert refused.returncode == 7, refused  # couldn't connect
    # one backend goes: one small update, every request to the one left
    services[0] = ServiceLB(svc.service_id, svc.network_id, svc.vip, svc.ports, ["10.0.1.6"])
    cluster.drivers["swarm01"].call("program_task_lb", task_netns=client.path, services=services)
    seen = {cluster.in_task(client, "curl -s -m 3 http://10.0.1.2:8080/").stdout.strip() for _ in range(3)}
    assert seen == {"Hello World! from 10.255.0.6"}
    table = cluster.in_task(client, "nft list table ip shoal_lb").stdout
    assert "numgen inc mod 1" in table and "10.0.1.5" not in table


def test_routing_mesh_answers_on_every_node(cluster: Cluster) -> None:
    published = Published(MESH_PORT, "tcp", 8080, "ingress", ["10.255.0.5", "10.255.0.6"])
    for host, d in cluster.drivers.items():
        d.call("program_ingress", published=[published], ingress=att(INGRESS, SBOX_IP[host]))
    for host, ip in HOSTS.items():  # swarm02 runs no backend
        answers = {ctl_curl(f"http://{ip}:{MESH_PORT}/").stdout.strip() for _ in range(4)}
        assert answers == {"Hello World! from 10.255.0.5", "Hello World! from 10.255.0.6"}, (host, answers)
    assert "ingress_sbox" in cluster.sh("swarm02", "ip netns list").stdout
    # a task reaches the published port through its gateway leg as well
    out = cluster.in_task(task("client"), f"curl -s -m 3 http://10.213.0.12:{MESH_PORT}/").stdout
    assert out.startswith("Hello World! from 10.255.0.")


def test_host_mode_port_only_where_the_task_runs(cluster: Cluster) -> None:
    mesh = Published(MESH_PORT, "tcp", 8080, "ingress", ["10.255.0.5", "10.255.0.6"])
    host_port = Published(HOST_PORT, "tcp", 8080, "host", ["10.0.1.5"])  # web1, by its overlay address
    cluster.drivers["swarm00"].call(
        "program_ingress", published=[mesh, host_port], ingress=att(INGRESS, SBOX_IP["swarm00"])
    )
    assert ctl_curl(f"http://10.213.0.10:{HOST_PORT}/").stdout.strip() == "Hello World! from 10.255.0.5"
    assert ctl_curl(f"http://10.213.0.11:{HOST_PORT}/", timeout=2).returncode != 0
    # the mesh port keeps working next to it
    assert ctl_curl(f"http://10.213.0.10:{MESH_PORT}/").stdout.startswith("Hello World!")


def test_a_task_on_no_network_gets_the_gateway_leg_and_host_mode_ports(cluster: Cluster) -> None:
    plain = task("plain")  # swarm02
    links = cluster.in_task(plain, "ip -o link show").stdout
    assert "eth0" in links and "eth1" not in links
    gw_ip = cluster.drivers["swarm02"].call("gateway_address", task_id="plain")
    assert "default via 172.18.0.1 dev eth0" in cluster.in_task(plain, "ip route").stdout
    mesh = Published(MESH_PORT, "tcp", 8080, "ingress", ["10.255.0.5", "10.255.0.6"])
    host_port = Published(HOST_PORT, "tcp", 8080, "host", [gw_ip])  # by its gateway-leg address
    cluster.drivers["swarm02"].call(
        "program_ingress", published=[mesh, host_port], ingress=att(INGRESS, SBOX_IP["swarm02"])
    )
    assert ctl_curl(f"http://10.213.0.12:{HOST_PORT}/").stdout.strip() == f"Hello World! from {gw_ip}"
    with pytest.raises(DriverError, match="no local task"):
        bad = Published(HOST_PORT + 1, "tcp", 8080, "host", ["10.0.1.5"])  # web1 runs on swarm00
        cluster.drivers["swarm02"].call("program_ingress", published=[mesh, bad], ingress=att(INGRESS, "10.255.0.4"))
    assert ctl_curl(f"http://10.213.0.12:{HOST_PORT}/").stdout.startswith("Hello World!")  # unchanged


def test_internal_network_has_no_way_out(cluster: Cluster) -> None:
    lonely = task("lonely")  # swarm02, internal network only
    links = cluster.in_task(lonely, "ip -o link show").stdout
    assert "eth0" in links and "eth1" not in links
    assert "default" not in cluster.in_task(lonely, "ip route").stdout
    assert cluster.in_task(lonely, "ping -c 1 -W 1 10.213.0.12").returncode != 0
    # but it reaches its peer on the internal overlay on another host
    out = cluster.in_task(lonely, "curl -s -m 3 http://10.0.2.6:8080/").stdout.strip()
    assert out == "Hello World! from 10.0.2.6"


def test_outbound_is_masqueraded_and_tasks_are_isolated_on_the_gateway_bridge(cluster: Cluster) -> None:
    web2, client = task("web2"), task("client")  # both on swarm01
    # out through the gateway leg to the underlay, masqueraded to the node's address
    assert cluster.in_task(client, "ping -c 1 -W 2 10.213.0.1").returncode == 0
    web2_gw = cluster.drivers["swarm01"].call("gateway_address", task_id="web2")
    assert web2_gw and web2_gw.startswith("172.18.")
    assert cluster.in_task(web2, f"ip -o -4 addr show dev eth2 | grep -q {web2_gw}").returncode == 0
    # icc off: no task-to-task traffic over the gateway bridge (isolated bridge ports)
    assert cluster.in_task(client, f"ping -c 1 -W 1 {web2_gw}").returncode != 0
    assert "isolated on" in cluster.sh("swarm01", "bridge -d link show dev gwweb2").stdout


def test_attach_is_idempotent_and_peers_are_declarative(cluster: Cluster) -> None:
    client = task("client")
    before = cluster.in_task(client, "ip -o link show").stdout
    cluster.drivers["swarm01"].call("attach", task_id=client.id, task_netns=client.path, attachments=client.attachments)
    assert cluster.in_task(client, "ip -o link show").stdout == before
    sandbox = "1-" + str(NET_A["network_id"])[:10]
    d = cluster.drivers["swarm01"]
    d.call("set_peers", network_id=NET_A["network_id"], peers=[])
    assert "dst" not in cluster.sh("swarm01", f"ip netns exec {sandbox} bridge fdb show dev vxlan4097").stdout
    assert cluster.in_task(client, "ping -c 1 -W 1 10.0.1.5").returncode != 0
    cluster.sync_peers()
    assert cluster.in_task(client, "ping -c 1 -W 2 10.0.1.5").returncode == 0


def test_a_restarted_dataplane_finds_what_the_last_one_made(cluster: Cluster) -> None:
    cluster.drivers["swarm01"].close()  # shoald restarts: a new Dataplane, nothing in memory
    d = cluster.drivers["swarm01"] = Driver(cluster.bed, "swarm01", HOSTS["swarm01"])
    web2, client = task("web2"), task("client")
    sandbox = "1-" + str(NET_A["network_id"])[:10]

    def state() -> str:
        return "".join(
            [
                cluster.in_task(web2, "ip -o addr show").stdout,
                cluster.in_task(web2, "ip -o link show").stdout,
                cluster.sh("swarm01", f"ip netns exec {sandbox} bridge fdb show dev vxlan4097").stdout,
                cluster.sh("swarm01", "ip -o link show; ip netns list").stdout,
            ]
        )

    before = state()
    gw_before = d.call("gateway_address", task_id="web2")
    d.call("attach", task_id=web2.id, task_netns=web2.path, attachments=web2.attachments)
    cluster.sync_peers()
    assert state() == before
    assert d.call("gateway_address", task_id="web2") == gw_before
    # the VIP table it does not remember is replaced whole
    vip = ServiceLB("websvc00000000000000000000", str(NET_A["network_id"]), "10.0.1.2", [(8080, "tcp")], ["10.0.1.5"])
    d.call("program_task_lb", task_netns=client.path, services=[vip])
    assert (
        cluster.in_task(client, "curl -s -m 3 http://10.0.1.2:8080/").stdout.strip() == "Hello World! from 10.255.0.5"
    )
    mesh = Published(MESH_PORT, "tcp", 8080, "ingress", ["10.255.0.5", "10.255.0.6"])
    d.call("program_ingress", published=[mesh], ingress=att(INGRESS, SBOX_IP["swarm01"]))
    assert ctl_curl(f"http://10.213.0.11:{MESH_PORT}/").stdout.startswith("Hello World!")


def test_a_failing_attach_leaves_nothing(cluster: Cluster) -> None:
    d = cluster.drivers["swarm02"]
    bad = Task("broken", "swarm02", [])
    cluster.sh("swarm02", f"ip netns add {bad.netns}")
    try:
        new_net = {
            "network_id": "dpnetbbbbbbbbbbbbbbbbbbbb",
            "vni": 4200,
            "subnet": "10.0.9.0/24",
            "gateway": "10.0.9.1",
        }
        clash = {**new_net, "network_id": "dpnetccccccccccccccccccc", "subnet": "10.0.8.0/24", "gateway": "10.0.8.1"}
        before = cluster.sh("swarm02", "ip -o link show; ip netns list; nft list tables").stdout
        with pytest.raises(DriverError, match="attach broken"):  # same VNI twice: the kernel refuses
            d.call(
                "attach",
                task_id=bad.id,
                task_netns=bad.path,
                attachments=[att(new_net, "10.0.9.5"), att(clash, "10.0.8.5")],
            )
        assert cluster.sh("swarm02", "ip -o link show; ip netns list; nft list tables").stdout == before
        assert "eth" not in cluster.in_task(bad, "ip -o link show").stdout
        with pytest.raises(DriverError, match="no network namespace"):
            d.call("attach", task_id="ghost", task_netns="/run/netns/nope", attachments=[att(NET_A, "10.0.1.99")])
    finally:
        cluster.sh("swarm02", f"ip netns del {bad.netns}")


def test_detach_and_cleanup_leave_nothing(cluster: Cluster) -> None:
    web1 = task("web1")
    d0 = cluster.drivers["swarm00"]
    d0.call("program_ingress", published=[], ingress=None)
    assert "shoal_mesh" not in cluster.sh("swarm00", "nft list tables").stdout
    assert "ingress_sbox" not in cluster.sh("swarm00", "ip netns list").stdout
    d0.call("detach", task_id=web1.id, task_netns=web1.path)
    assert cluster.in_task(web1, "ip -o link show").stdout.count("\n") == 1  # lo only
    ingress_sbox = "1-" + str(INGRESS["network_id"])[:10]
    assert ingress_sbox not in cluster.sh("swarm00", "ip netns list").stdout  # web1 was its last user
    # swarm01: the VIP table goes with detach
    client = task("client")
    cluster.drivers["swarm01"].call("detach", task_id=client.id, task_netns=client.path)
    assert "shoal_lb" not in cluster.in_task(client, "nft list tables").stdout
    for host, d in cluster.drivers.items():
        d.call("cleanup")
        netns = cluster.sh(host, "ip netns list").stdout
        assert not [n for n in netns.split() if n.startswith("1-") or n == "ingress_sbox"], netns
        links = cluster.sh(host, "ip -o link show").stdout
        assert "shoal_gwbridge" not in links and "vxlan" not in links and "gw" not in links, links
        assert cluster.sh(host, "nft list tables").stdout.strip() == "", host
        assert cluster.sh(host, "bridge fdb show | grep -c dst || true").stdout.strip() == "0"
        for t in TASKS:
            if t.host == host:
                assert "eth" not in cluster.in_task(t, "ip -o link show").stdout
