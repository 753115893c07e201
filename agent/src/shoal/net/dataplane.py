"""The node's dataplane: what the agent calls (from a worker thread) to wire tasks into overlay
networks, program service VIPs and the routing mesh (DESIGN.md §5, issue 5 items 2-4).

Every method is synchronous and idempotent, and serialised by one lock. A call that fails
removes what it created and raises DataplaneError. Kernel objects carry their owner (link
aliases, fixed names), so a restarted agent finds what an earlier one made; only the peers of
networks without a local sandbox and the last VIP table of each task are kept in memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from shoal.net import encryption, ipvs, lb, links, mesh, nft, ns, overlay
from shoal.net.gwbridge import Gateway
from shoal.net.model import (
    INGRESS_SBOX,
    SANDBOX_PREFIX,
    VXLAN_PORT,
    DataplaneError,
    NetAttachment,
    Peer,
    Published,
    ServiceLB,
    sandbox_name,
)

log = logging.getLogger(__name__)


class Undo:
    """What to take back if the call fails, newest first."""

    def __init__(self) -> None:
        self.steps: list[Callable[[], object]] = []

    def push(self, step: Callable[[], object]) -> None:
        self.steps.append(step)

    def rollback(self) -> None:
        for step in reversed(self.steps):
            try:
                step()
            except Exception as exc:  # keep undoing the rest
                log.warning("dataplane: undo step failed: %s", exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DataplaneError):
        return exc.message
    if isinstance(exc, NetlinkError):
        return f"netlink error {exc.code}: {exc.args[1] if len(exc.args) > 1 else exc}"
    return str(exc) or type(exc).__name__


LB_BACKENDS = ("auto", "ipvs", "nftables")


def choose_backend(wanted: str, ipvs_usable: Callable[[], bool] = ipvs.available) -> str:
    """`auto`: IPVS where the kernel has ip_vs (loading the module), nftables otherwise."""
    if wanted not in LB_BACKENDS:
        raise DataplaneError(f"unknown load balancer backend {wanted!r} (one of {', '.join(LB_BACKENDS)})")
    if wanted == "nftables":
        return "nftables"
    if ipvs_usable():
        return "ipvs"
    if wanted == "ipvs":
        raise DataplaneError("lb_backend is ipvs, but this kernel has no ip_vs module")
    return "nftables"


class Dataplane:
    def __init__(
        self,
        node_ip: str,
        run_netns_dir: str = "/run/netns",
        gw_subnet: str = "172.18.0.0/16",
        lb_backend: str = "nftables",
    ) -> None:
        self.node_ip = node_ip
        # the cluster's DataPathPort: every VXLAN device this node creates sends and listens on it
        self.vxlan_port = VXLAN_PORT
        self._backend = choose_backend(lb_backend)
        # IPVS loaded: services left by an earlier run on the other backend are removed
        self._ipvs_loaded = self._backend == "ipvs" or os.path.exists("/proc/net/ip_vs")
        self.netns_dir = run_netns_dir
        self.gw = Gateway(gw_subnet)
        self._lock = threading.RLock()
        self._peers: dict[str, list[Peer]] = {}
        self._lb: dict[str, lb.State] = {}
        self._forwarding_before: tuple[str, str] | None = None  # (underlay ifname, old value)
        self._mesh_last: list[Published] = []  # the ingress_sbox's ports, to restore on failure
        self._encryption = encryption.Encryption(node_ip)  # ESP states of encrypted overlays

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[Undo]:
        with self._lock:
            undo = Undo()
            try:
                yield undo
            except BaseException as exc:
                undo.rollback()
                raise DataplaneError(f"{what}: {_describe(exc)}") from exc

    # ---- tasks
    def attach(self, task_id: str, task_netns: str, attachments: list[NetAttachment]) -> None:
        """Give the task eth0, eth1... on its networks (in order) and, unless it has networks and
        all of them are internal, a last ethN on the gateway bridge carrying its default route."""
        with self._call(f"attach {task_id}") as undo:
            if not ns.exists(task_netns):
                raise DataplaneError(f"no network namespace at {task_netns}")
            ns.run(task_netns, overlay.disable_ipv6)
            for i, att in enumerate(attachments):
                self._overlay_endpoint(undo, task_id, task_netns, f"eth{i}", att)
            # a task on no network at all still gets the gateway leg: outbound traffic and
            # host-mode ports work for it, as Docker's default bridge gives them
            if not attachments or not all(a.internal for a in attachments):
                ips = [a.ip for a in attachments]
                self._gateway_leg(undo, task_id, task_netns, f"eth{len(attachments)}", ips)

    def detach(self, task_id: str, task_netns: str) -> None:
        """Remove the task's interfaces and VIP table; sandboxes left without endpoints go."""
        with self._call(f"detach {task_id}"):
            for name in self._sandboxes():
                overlay.remove_endpoint(ns.path_of(name, self.netns_dir), task_id)
            self._drop_empty_sandboxes()
            self.gw.remove_leg(task_id)
            self._lb.pop(task_netns, None)
            if ns.exists(task_netns):
                with contextlib.suppress(nft.NftError):
                    nft.delete_table(task_netns, lb.TABLE)

    def set_peers(self, network_id: str, peers: list[Peer]) -> None:
        """Exactly these remote endpoints in the network's FDB and neighbour tables. Remembered
        for a network with no local sandbox yet, applied when its first task attaches."""
        with self._call(f"peers of {network_id[:12]}") as undo:
            before = self._peers.get(network_id, [])
            self._peers[network_id] = list(peers)
            path = ns.path_of(sandbox_name(network_id), self.netns_dir)
            if not ns.exists(path):
                return
            undo.push(lambda: self._peers.__setitem__(network_id, before))
            undo.push(lambda: overlay.sync_peers(path, None, self.node_ip, before))
            overlay.sync_peers(path, None, self.node_ip, list(peers))

    def program_task_lb(self, task_netns: str, services: list[ServiceLB]) -> None:
        """The task's VIP table (`shoal_lb`): replaced atomically, or changed incrementally when
        the last programmed state is known; the old table stays whole if this fails."""
        with self._call("program VIPs"):
            new = lb.normalise(services)
            if not new:
                if ns.exists(task_netns):
                    nft.delete_table(task_netns, lb.TABLE)
                    if self._ipvs_loaded:
                        ipvs.clear(task_netns)
                self._lb.pop(task_netns, None)
                return
            old = self._lb.get(task_netns)
            if self._backend == "ipvs":
                # IPVS first: a VIP gets its mark only once its virtual server exists
                if old != new:
                    ipvs.sync(task_netns, ipvs.task_servers(new))
                    nft.apply(task_netns, ipvs.task_ruleset(new))
                self._lb[task_netns] = new
                return
            if old is None and self._ipvs_loaded:
                ipvs.clear(task_netns)  # left by a run on the IPVS backend
            if old is not None:
                try:
                    nft.apply(task_netns, lb.diff(old, new))
                    self._lb[task_netns] = new
                    return
                except nft.NftError as exc:  # table changed behind our back: rewrite it
                    log.info("dataplane: incremental VIP update failed (%s), replacing the table", exc)
            self._lb.pop(task_netns, None)
            nft.apply(task_netns, lb.full(new))
            self._lb[task_netns] = new

    # ---- routing mesh
    def program_ingress(self, published: list[Published], ingress: NetAttachment | None) -> None:
        """This node's published ports: the host table `shoal_mesh`, and for ingress-mode ports
        the `ingress_sbox` balancing over the ingress overlay. Everything is checked before
        anything changes; an empty list removes both."""
        with self._call("program published ports") as undo:
            by_port: dict[tuple[str, int], Published] = {}
            for p in published:
                key = (p.protocol.lower(), p.published_port)
                if key in by_port:
                    raise DataplaneError(f"port {p.published_port}/{key[0]} is published twice")
                by_port[key] = p
            ingress_ports = [p for p in published if p.mode == "ingress"]
            if ingress_ports and ingress is None:
                raise DataplaneError("ingress-mode ports need the node's ingress network attachment")
            targets = self._host_targets([p for p in published if p.mode == "host"])
            if not published:
                with contextlib.suppress(nft.NftError):
                    nft.delete_table(None, mesh.TABLE)
                self._remove_ingress_sbox()
                self._mesh_last = []
                return
            if ingress_ports and ingress is not None:
                sbox_ip = self._ensure_ingress_sbox(undo, ingress)
                sbox = ns.path_of(INGRESS_SBOX, self.netns_dir)
                previous = self._mesh_last
                if self._backend == "ipvs":
                    ipvs.sync(sbox, ipvs.ingress_servers(ingress_ports))
                    undo.push(lambda: ipvs.sync(sbox, ipvs.ingress_servers(previous)))
                    nft.apply(sbox, ipvs.ingress_ruleset(ingress_ports, mesh.SBOX_GW_IF, mesh.SBOX_OVERLAY_IF))
                    undo.push(
                        lambda: nft.apply(sbox, ipvs.ingress_ruleset(previous, mesh.SBOX_GW_IF, mesh.SBOX_OVERLAY_IF))
                    )
                else:
                    if self._ipvs_loaded:
                        ipvs.clear(sbox)  # left by a run on the IPVS backend
                    nft.apply(sbox, mesh.sbox_ruleset(ingress_ports))
                    undo.push(lambda: nft.apply(sbox, mesh.sbox_ruleset(previous)))
                targets += [
                    mesh.HostTarget(p.protocol.lower(), p.published_port, (sbox_ip,), None) for p in ingress_ports
                ]
            self._underlay_forwarding()
            nft.apply(None, mesh.host_ruleset(targets))
            self._mesh_last = ingress_ports
            if not ingress_ports:
                self._remove_ingress_sbox()

    # ---- encrypted overlays
    def program_encryption(self, peers: list[str], vnis: list[int], ring: list[dict[str, Any]]) -> None:
        """ESP to every peer node of the encrypted networks (VNIs), with the cluster's key ring."""
        with self._call("encryption"):
            self._encryption.program(encryption.plan(self.node_ip, peers, vnis, self.vxlan_port, ring))

    # ---- whole node
    def cleanup(self) -> None:
        """Remove everything this node's dataplane made (tests, `swarm leave`)."""
        with self._call("cleanup"):
            for task_netns in list(self._lb):
                if ns.exists(task_netns):
                    with contextlib.suppress(nft.NftError):
                        nft.delete_table(task_netns, lb.TABLE)
            self._lb.clear()
            with contextlib.suppress(OSError):
                self._encryption.clear()
            with contextlib.suppress(nft.NftError):
                nft.delete_table(None, mesh.TABLE)
            self._remove_ingress_sbox()
            self._mesh_last = []
            for name in self._sandboxes():
                overlay.remove_sandbox(name, self.netns_dir)
            self.gw.remove()
            if self._forwarding_before is not None:
                ifname, value = self._forwarding_before
                with contextlib.suppress(OSError):
                    ns.run(None, lambda: ns.sysctl_write(f"net.ipv4.conf.{ifname}.forwarding", value))
                self._forwarding_before = None

    def backend(self) -> str:
        """The load balancer backend in use: ipvs or nftables (chosen once, at start)."""
        return self._backend

    def ipvs_available(self) -> bool:
        return lb.ipvs_available()

    def gateway_address(self, task_id: str) -> str | None:
        """The task's address on the gateway bridge, if it has a leg there."""
        leg = self.gw.legs().get(task_id)
        return leg[1] if leg else None

    # ---- pieces
    def _sandboxes(self) -> list[str]:
        return [n for n in ns.names(self.netns_dir) if n.startswith(SANDBOX_PREFIX)]

    def _drop_empty_sandboxes(self) -> None:
        for name in self._sandboxes():
            if not overlay.endpoint_owners(ns.path_of(name, self.netns_dir)):
                overlay.remove_sandbox(name, self.netns_dir)

    def _overlay_endpoint(self, undo: Undo, owner: str, task_netns: str, ifname: str, att: NetAttachment) -> None:
        name = sandbox_name(att.network_id)
        path = ns.path_of(name, self.netns_dir)
        if not overlay.sandbox_ready(path, att):
            if ns.exists(path):
                log.warning("dataplane: sandbox %s is incomplete, making it again", name)
                overlay.remove_sandbox(name, self.netns_dir)
            overlay.create_sandbox(name, self.netns_dir, att, self.node_ip, self.vxlan_port)
            undo.push(lambda: overlay.remove_sandbox(name, self.netns_dir))
            overlay.sync_peers(path, att.vni, self.node_ip, self._peers.get(att.network_id, []))
        ep = overlay.endpoint(path, owner, task_netns, ifname, att)
        if not links.endpoint_present(ep):
            links.create_endpoint(ep)
            undo.push(lambda: overlay.remove_endpoint(path, owner))

    def _gateway_leg(self, undo: Undo, owner: str, task_netns: str, ifname: str, overlay_ips: list[str]) -> str:
        if self.gw.ensure():
            undo.push(self.gw.remove)
        legs = self.gw.legs()
        mine = legs.get(owner)
        ip = mine[1] if mine and mine[1] else self.gw.allocate({leg[1] for leg in legs.values()})
        ep = self.gw.endpoint(owner, task_netns, ifname, ip, overlay_ips)
        if not links.endpoint_present(ep):
            links.create_endpoint(ep)
            undo.push(lambda: self.gw.remove_leg(owner))

        def default_route(ipr: IPRoute) -> None:
            ipr.route("replace", dst="0.0.0.0/0", gateway=self.gw.address, oif=links.lookup(ipr, ifname))

        ns.iproute(task_netns, default_route)
        return ip

    def _ensure_ingress_sbox(self, undo: Undo, ingress: NetAttachment) -> str:
        path = ns.path_of(INGRESS_SBOX, self.netns_dir)
        if not ns.exists(path):
            ns.create(INGRESS_SBOX, self.netns_dir)
            undo.push(self._remove_ingress_sbox)

        def sysctls() -> None:
            overlay.disable_ipv6()
            ns.sysctl_write("net.ipv4.ip_forward", "1")  # its own namespace only
            if self._backend == "ipvs":
                # the masquerade rule must see IPVS's connections (Docker's ingress sandbox does the same)
                ns.sysctl_write("net.ipv4.vs.conntrack", "1")

        ns.run(path, sysctls)
        self._overlay_endpoint(undo, INGRESS_SBOX, path, mesh.SBOX_OVERLAY_IF, ingress)
        return self._gateway_leg(undo, INGRESS_SBOX, path, mesh.SBOX_GW_IF, [ingress.ip])

    def _remove_ingress_sbox(self) -> None:
        for name in self._sandboxes():
            overlay.remove_endpoint(ns.path_of(name, self.netns_dir), INGRESS_SBOX)
        self._drop_empty_sandboxes()
        self.gw.remove_leg(INGRESS_SBOX)
        ns.remove(INGRESS_SBOX, self.netns_dir)

    def _host_targets(self, host_ports: list[Published]) -> list[mesh.HostTarget]:
        """Host-mode backends to gateway-leg addresses (the host reaches tasks only there);
        backends may be given as overlay addresses or as leg addresses."""
        if not host_ports:
            return []
        by_overlay: dict[str, str] = {}
        legs = self.gw.legs()
        for owner, (_, leg_ip, overlay_ips) in legs.items():
            if owner != INGRESS_SBOX:
                by_overlay[leg_ip] = leg_ip
                by_overlay.update(dict.fromkeys(overlay_ips, leg_ip))
        out = []
        for p in host_ports:
            addrs = []
            for b in p.backends:
                if b not in by_overlay:
                    raise DataplaneError(f"host-mode port {p.published_port}: no local task with address {b}")
                addrs.append(by_overlay[b])
            out.append(mesh.HostTarget(p.protocol.lower(), p.published_port, tuple(sorted(set(addrs))), p.target_port))
        return out

    def _underlay_forwarding(self) -> None:
        """Forwarding on the underlay interface only: published ports arrive there and are
        forwarded to the gateway bridge (IPv4 checks the input interface's flag)."""

        def underlay(ipr: IPRoute) -> str:
            found = ipr.get_addr(family=2, address=self.node_ip)
            if not found:
                raise DataplaneError(f"no interface has the node address {self.node_ip}")
            return str(ipr.get_links(found[0]["index"])[0].get("IFLA_IFNAME"))

        ifname = ns.iproute(None, underlay)
        key = f"net.ipv4.conf.{ifname}.forwarding"
        old = ns.run(None, lambda: ns.sysctl_read(key))
        if old != "1":
            ns.run(None, lambda: ns.sysctl_write(key, "1"))
            if self._forwarding_before is None:
                self._forwarding_before = (ifname, old)
