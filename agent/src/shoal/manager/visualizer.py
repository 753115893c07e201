"""What the visualizer page draws, from a manager's replica: one column per node, a card per task
that should be running, services (for colours) and networks (the legend). Pure; the page turns
it into DOM nodes with textContent only, so no name can inject markup.

Only display fields leave here: no spec internals, environment, secrets or tokens.
"""

from __future__ import annotations

from typing import Any

SHOWN_STATES = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running")


def board(
    nodes: list[dict[str, Any]],
    services: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
    networks: list[dict[str, Any]],
) -> dict[str, Any]:
    """`nodes` already decorated with live ManagerStatus (Leader, Reachability)."""
    names = {s["ID"]: (s.get("Spec") or {}).get("Name", s["ID"][:12]) for s in services}
    columns = []
    for node in sorted(nodes, key=lambda n: ((n.get("Description") or {}).get("Hostname") or "", n["ID"])):
        spec, status = node.get("Spec") or {}, node.get("Status") or {}
        manager = node.get("ManagerStatus") or {}
        columns.append(
            {
                "ID": node["ID"],
                "Hostname": (node.get("Description") or {}).get("Hostname") or spec.get("Name") or node["ID"][:12],
                "Role": spec.get("Role", ""),
                "Leader": bool(manager.get("Leader")),
                "Availability": spec.get("Availability", ""),
                "State": status.get("State", ""),
                "Addr": status.get("Addr", ""),
                "Labels": dict(spec.get("Labels") or {}),
            }
        )
    cards = []
    for task in tasks:
        state = (task.get("Status") or {}).get("State", "")
        wanted = task.get("DesiredState") in ("running", "complete")  # complete: a job's task
        if not wanted or state not in SHOWN_STATES or not task.get("NodeID"):
            continue
        container = (task.get("Spec") or {}).get("ContainerSpec") or {}
        cards.append(
            {
                "ID": task["ID"],
                "NodeID": task["NodeID"],
                "ServiceID": task.get("ServiceID", ""),
                "Service": names.get(task.get("ServiceID", ""), ""),
                "Slot": task.get("Slot") or 0,
                "Image": container.get("Image", ""),
                "State": state,
                "Since": (task.get("Status") or {}).get("Timestamp", ""),
            }
        )
    cards.sort(key=lambda c: (c["Service"], c["Slot"], c["ID"]))
    legend = [
        {
            "ID": n["ID"],
            "Name": (n.get("Spec") or {}).get("Name", ""),
            "Driver": ((n.get("Spec") or {}).get("DriverConfiguration") or {}).get("Name") or "overlay",
            "Subnet": ",".join(c.get("Subnet", "") for c in ((n.get("IPAMOptions") or {}).get("Configs") or [])),
        }
        for n in sorted(networks, key=lambda n: (n.get("Spec") or {}).get("Name", ""))
    ]
    service_list = [{"ID": sid, "Name": name} for sid, name in sorted(names.items(), key=lambda kv: kv[1])]
    return {"Nodes": columns, "Tasks": cards, "Services": service_list, "Networks": legend}
