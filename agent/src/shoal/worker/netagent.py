"""The worker's side of networking: attach tasks to overlays, keep peers, load balancers, the routing
mesh and DNS in line with the state the managers hand out (see manager/netstate.py).

The dataplane's calls are blocking netlink/nft work: they run in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from shoal import metrics
from shoal.model import netkeys
from shoal.model.network import gateway_of, is_encrypted, mac_of, subnet_of, vni_of
from shoal.runtime.base import Driver
from shoal.runtime.taskopts import task_nameservers

if TYPE_CHECKING:  # the dataplane (pyroute2, nft) is imported only once networking starts
    from shoal.net.dataplane import Dataplane
    from shoal.net.dns import EmbeddedDNS

log = logging.getLogger("shoal.netagent")


def attachments_of(task: dict[str, Any]) -> list[Any]:
    from shoal.net.model import NetAttachment

    out = []
    for att in task.get("NetworksAttachments") or []:
        net = att["Network"]
        addr = att["Addresses"][0]
        out.append(
            NetAttachment(
                network_id=net["ID"],
                vni=vni_of(net),
                subnet=str(subnet_of(net)),
                gateway=gateway_of(net),
                address=addr,
                mac=mac_of(addr),
                internal=bool(net["Spec"].get("Internal")),
                ingress=bool(net["Spec"].get("Ingress")),
                encrypted=is_encrypted(net),
            )
        )
    return out


class NetAgent:
    def __init__(self, dataplane: Dataplane, dns: EmbeddedDNS | None, driver: Driver) -> None:
        self.dataplane = dataplane
        self.dns = dns
        self.driver = driver
        self.lock = asyncio.Lock()
        self.state: dict[str, Any] = {}
        self.attached: dict[str, list[str]] = {}  # task id -> network ids
        self.applied: dict[str, str] = {}  # what was last programmed, by key, as a digest

    async def _call(self, fn: Any, *args: Any) -> Any:
        async with self.lock:
            with metrics.timed(metrics.DATAPLANE_PROGRAM_SECONDS.labels(operation=getattr(fn, "__name__", "other"))):
                return await asyncio.to_thread(fn, *args)

    def set_data_path_port(self, port: Any) -> None:
        """The cluster's VXLAN UDP port, as the managers name it in every assignments answer."""
        if isinstance(port, int) and 0 < port < 65536:
            self.dataplane.vxlan_port = port

    # ---- executor hooks
    async def before_start(self, task: dict[str, Any]) -> None:
        atts = attachments_of(task)
        netns = self.driver.netns_path(task["ID"])
        await self._call(self.dataplane.attach, task["ID"], netns, atts)
        self.attached[task["ID"]] = [a.network_id for a in atts]
        if self.dns is not None:
            networks = [a.network_id for a in atts if not a.ingress]
            await self.dns.add_task(task["ID"], netns, networks, task_nameservers(task))

    async def after_start(self, task: dict[str, Any]) -> None:
        await self.apply(self.state, force_task=task["ID"])

    async def before_remove(self, task_id: str) -> None:
        if self.dns is not None:
            await self.dns.remove_task(task_id)
        if task_id in self.attached:
            await self._call(self.dataplane.detach, task_id, self.driver.netns_path(task_id))
            self.attached.pop(task_id, None)
            self.applied.pop(f"lb:{task_id}", None)

    async def adopt(self, assigned: dict[str, dict[str, Any]], states: dict[str, str]) -> None:
        """After an agent restart: running tasks keep their interfaces; give them DNS again."""
        for task_id, task in assigned.items():
            if states.get(task_id) != "running" or task_id in self.attached or not task.get("NetworksAttachments"):
                continue
            atts = attachments_of(task)
            self.attached[task_id] = [a.network_id for a in atts]
            if self.dns is not None:
                try:
                    await self.dns.add_task(
                        task_id,
                        self.driver.netns_path(task_id),
                        [a.network_id for a in atts if not a.ingress],
                        task_nameservers(task),
                    )
                except Exception as exc:
                    log.warning("DNS for adopted task %s: %s", task_id, exc)

    # ---- state from the managers
    def _changed(self, key: str, value: Any) -> bool:
        digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
        if self.applied.get(key) == digest:
            return False
        self.applied[key] = digest
        return True

    async def apply(self, state: dict[str, Any], force_task: str | None = None) -> None:
        from shoal.net.model import NetAttachment, Peer, Published, ServiceLB

        self.state = state or {}
        try:
            # before the peers: a new peer on an encrypted network gets its states and policy
            # before its FDB entries, so no packet to it leaves unencrypted
            await self._encryption(self.state)
            for net_id, net in (self.state.get("Networks") or {}).items():
                if self._changed(f"peers:{net_id}", net["Peers"]):
                    peers = [
                        Peer(network_id=net_id, ip=p["IP"], mac=p["MAC"], node_ip=p["NodeIP"]) for p in net["Peers"]
                    ]
                    await self._call(self.dataplane.set_peers, net_id, peers)
            lbs = self.state.get("LB") or []
            for task_id, nets in list(self.attached.items()):
                mine = [lb for lb in lbs if lb["NetworkID"] in nets]
                if self._changed(f"lb:{task_id}", mine) or task_id == force_task:
                    services = [
                        ServiceLB(
                            service_id=lb["ServiceID"],
                            network_id=lb["NetworkID"],
                            vip=lb["VIP"],
                            ports=[tuple(p) for p in lb["Ports"]],
                            backends=lb["Backends"],
                            mode=lb["Mode"],
                        )
                        for lb in mine
                    ]
                    await self._call(self.dataplane.program_task_lb, self.driver.netns_path(task_id), services)
            ingress = self.state.get("Ingress")
            published = self.state.get("Published") or []
            host_ports = [p for p in self.state.get("HostPorts") or [] if p["TaskID"] in self.attached]
            if self._changed("mesh", [ingress, published, host_ports]):
                att = None
                if ingress:
                    att = NetAttachment(
                        network_id=ingress["NetworkID"],
                        vni=ingress["VNI"],
                        subnet=ingress["Subnet"],
                        gateway=ingress["Gateway"],
                        address=ingress["Address"],
                        mac=ingress["MAC"],
                        internal=False,
                        ingress=True,
                    )
                pubs = [
                    Published(
                        published_port=p["PublishedPort"],
                        protocol=p["Protocol"],
                        target_port=p["TargetPort"],
                        mode=p["Mode"],
                        backends=p["Backends"],
                    )
                    for p in published
                ]
                for p in host_ports:  # mode=host: only here, straight to the local task's gateway-bridge leg
                    ip = await self._call(self.dataplane.gateway_address, p["TaskID"])
                    if ip:
                        pubs.append(
                            Published(
                                published_port=p["PublishedPort"],
                                protocol=p["Protocol"],
                                target_port=p["TargetPort"],
                                mode="host",
                                backends=[ip],
                            )
                        )
                await self._call(self.dataplane.program_ingress, pubs, att)
            if self.dns is not None and self._changed("dns", self.state.get("DNS")):
                from shoal.net.dns import DNSRecordSet

                self.dns.update(
                    [
                        DNSRecordSet(
                            network_id=r["NetworkID"], services=r["Services"], tasks_of=r["TasksOf"], names=r["Names"]
                        )
                        for r in self.state.get("DNS") or []
                    ]
                )
        except Exception:
            self.applied.clear()  # program everything again next time
            log.exception("programming the dataplane failed")

    async def _encryption(self, state: dict[str, Any]) -> None:
        ring = netkeys.valid_ring(state.get("NetworkKeys"))
        encrypted = [n for n in (state.get("Networks") or {}).values() if n.get("Encrypted")]
        peers = sorted({p["NodeIP"] for n in encrypted for p in n["Peers"]})
        vnis = sorted({int(n["VNI"]) for n in encrypted})
        # keys are named by their Lamport times only: nothing secret in what is hashed and kept
        if self._changed("encryption", [peers, vnis, netkeys.tags(ring), self.dataplane.vxlan_port]):
            await self._call(self.dataplane.program_encryption, peers, vnis, ring)

    async def cleanup(self) -> None:
        for task_id in list(self.attached):
            await self.before_remove(task_id)
        await self._call(self.dataplane.cleanup)
        self.applied.clear()
