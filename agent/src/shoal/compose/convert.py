"""A loaded Project → the Engine API objects of a stack, as docker/cli's cli/compose/convert.

Objects are named `NAME_x` and labelled `com.docker.stack.namespace=NAME`; every service is
attached to its networks (`NAME_default` when it names none) with its short name as an alias.
Fields whose features shoal's API does not have yet (Mounts, HealthCheck, Secrets, Configs, job
modes) are still converted to Docker's shapes: the server refuses them while it cannot honour them,
and the stack reports that, before anything is written, against the key that asked for them.
"""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.compose import ports as portspec
from shoal.compose.errors import ComposeError
from shoal.compose.interpolate import read_env_file
from shoal.compose.loader import Project, as_mapping
from shoal.compose.source import KeyPath
from shoal.compose.units import duration_ns, nano_cpus, ram_bytes
from shoal.errors import SpecError
from shoal.model.network import validate_create

NAMESPACE_LABEL = "com.docker.stack.namespace"
IMAGE_LABEL = "com.docker.stack.image"
DEFAULT_NETWORK = "default"


@dataclass
class StackObject:
    """A network, secret or config of the stack: `body` is its create request; `path` the key that
    declares it (for errors). External objects are looked up, never created."""

    name: str
    external: bool
    body: dict[str, Any]
    path: KeyPath


@dataclass
class Stack:
    namespace: str
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # short name → ServiceSpec
    networks: dict[str, StackObject] = field(default_factory=dict)
    secrets: dict[str, StackObject] = field(default_factory=dict)
    configs: dict[str, StackObject] = field(default_factory=dict)


class _Converter:
    def __init__(self, project: Project, namespace: str) -> None:
        self.p = project
        self.ns = namespace
        self.loc = project.locator

    def scoped(self, name: str) -> str:
        return f"{self.ns}_{name}"

    def labels(self, value: Any) -> dict[str, str]:
        out = {k: "" if v is None else str(v) for k, v in as_mapping(value).items()}
        out[NAMESPACE_LABEL] = self.ns
        return out

    def fail(self, path: KeyPath, what: str) -> ComposeError:
        return self.loc.error(path, what)

    def user_of(self, kind: str, key: str) -> KeyPath:
        """The first service key that refers to network/secret/config `key` (where to point)."""
        for name, svc in sorted(self.p.services.items()):
            refs = (svc or {}).get(kind) or ([DEFAULT_NETWORK] if kind == "networks" else [])
            if isinstance(refs, dict):
                if key in refs:
                    return ("services", name, kind, key)
                continue
            for i, ref in enumerate(refs):
                if (ref if isinstance(ref, str) else ref.get("source")) == key:
                    return ("services", name, kind, i)
        return (kind, key)

    def duration(self, path: KeyPath, value: Any) -> int | None:
        if value is None:
            return None
        try:
            return duration_ns(value)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    # ---- top-level objects

    def networks(self, used: set[str]) -> dict[str, StackObject]:
        declared = self.p.config.get("networks") or {}
        out: dict[str, StackObject] = {}
        for key in sorted(used):
            path: KeyPath = ("networks", key)
            if key not in declared and key != DEFAULT_NETWORK:
                raise self.fail(
                    self.user_of("networks", key), f"network {key!r} is not declared under the top-level networks"
                )
            net = declared.get(key) or {}
            external = net.get("external")
            if isinstance(external, dict) or external:
                name = (external.get("name") if isinstance(external, dict) else None) or net.get("name") or key
                out[key] = StackObject(name, True, {}, path)
                continue
            name = net.get("name") or self.scoped(key)
            body: dict[str, Any] = {
                "Name": name,
                "Driver": net.get("driver") or "overlay",
                "Labels": self.labels(net.get("labels")),
                "Attachable": bool(net.get("attachable")),
                "Internal": bool(net.get("internal")),
                "Scope": "swarm",
            }
            if net.get("enable_ipv6"):
                body["EnableIPv6"] = True
            if net.get("driver_opts"):
                body["Options"] = {k: str(v) for k, v in net["driver_opts"].items()}
            ipam = net.get("ipam") or {}
            if ipam:
                body["IPAM"] = {
                    "Driver": ipam.get("driver") or "default",
                    "Config": [self.ipam_config(c) for c in ipam.get("config") or []],
                    **({"Options": ipam["options"]} if ipam.get("options") else {}),
                }
            try:
                validate_create(dict(body), [])
            except SpecError as exc:
                raise self.fail(path, exc.message) from None
            out[key] = StackObject(name, False, body, path)
        return out

    @staticmethod
    def ipam_config(config: dict[str, Any]) -> dict[str, Any]:
        names = {"subnet": "Subnet", "ip_range": "IPRange", "gateway": "Gateway", "aux_addresses": "AuxiliaryAddresses"}
        return {names.get(k, k): v for k, v in config.items()}

    def files(self, kind: str, used: set[str]) -> dict[str, StackObject]:
        """Secrets or configs: `file:` ones are created with the file's content, external ones found."""
        declared = self.p.config.get(kind) or {}
        out: dict[str, StackObject] = {}
        for key in sorted(used):
            path: KeyPath = (kind, key)
            if key not in declared:
                raise self.fail(
                    self.user_of(kind, key), f"{kind[:-1]} {key!r} is not declared under the top-level {kind}"
                )
            obj = declared.get(key) or {}
            external = obj.get("external")
            if isinstance(external, dict) or external:
                name = (external.get("name") if isinstance(external, dict) else None) or obj.get("name") or key
                out[key] = StackObject(name, True, {}, path)
                continue
            if not obj.get("file"):
                raise self.fail(path, f"{kind[:-1]} {key!r} needs `file:` or `external: true`")
            file = Path(obj["file"])
            file = file if file.is_absolute() else self.p.workdir / file
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise self.fail((*path, "file"), f"cannot read {file}: {exc.strerror or exc}") from None
            name = obj.get("name") or self.scoped(key)
            body = {"Name": name, "Labels": self.labels(obj.get("labels")), "Data": base64.b64encode(data).decode()}
            if kind == "configs" and obj.get("template_driver"):
                body["Templating"] = {"Name": obj["template_driver"]}
            out[key] = StackObject(name, False, body, path)
        return out

    # ---- a service

    def env(self, path: KeyPath, svc: dict[str, Any]) -> list[str]:
        values: dict[str, str | None] = {}
        env_files = svc.get("env_file") or []
        for i, f in enumerate([env_files] if isinstance(env_files, str) else env_files):
            file = Path(f) if Path(f).is_absolute() else self.p.workdir / f
            if not file.is_file():
                raise self.fail(
                    (*path, "env_file", i) if not isinstance(env_files, str) else (*path, "env_file"),
                    f"env file {file} not found",
                )
            values.update(read_env_file(file))
        values.update(as_mapping(svc.get("environment")))
        out = []
        for k, v in values.items():
            if v is None:  # `KEY` alone: from the environment, dropped when unset (as docker)
                v = self.p.env.get(k)
                if v is None:
                    continue
            out.append(f"{k}={v}")
        return sorted(out)

    def mounts(self, path: KeyPath, svc: dict[str, Any]) -> list[dict[str, Any]]:
        declared = self.p.config.get("volumes") or {}
        out: list[dict[str, Any]] = []
        for i, vol in enumerate(svc.get("volumes") or []):
            if isinstance(vol, str):
                parts = vol.split(":")
                if len(parts) == 1:
                    vol = {"type": "volume", "target": parts[0]}
                else:
                    src, target = parts[0], parts[1]
                    mode = parts[2] if len(parts) > 2 else ""
                    bind = src.startswith(("/", ".", "~"))
                    vol = {
                        "type": "bind" if bind else "volume",
                        "source": src,
                        "target": target,
                        "read_only": "ro" in mode.split(","),
                    }
            kind = vol.get("type") or "volume"
            mount: dict[str, Any] = {"Type": kind, "Target": vol.get("target"), "ReadOnly": bool(vol.get("read_only"))}
            src = vol.get("source")
            if kind == "volume" and src:
                top = declared.get(src)
                if src not in declared:
                    raise self.fail(
                        (*path, "volumes", i), f"named volume {src!r} is not declared under the top-level volumes"
                    )
                top = top or {}
                ext = top.get("external")
                ext_name = ext.get("name") if isinstance(ext, dict) else None
                mount["Source"] = top.get("name") or ext_name or (src if ext else self.scoped(src))
                opts: dict[str, Any] = {"NoCopy": bool((vol.get("volume") or {}).get("nocopy"))}
                if not ext:  # docker/cli handleVolumeToMount: an external volume gets no stack labels
                    opts["Labels"] = self.labels(top.get("labels"))
                if not ext and (top.get("driver") or top.get("driver_opts")):
                    opts["DriverConfig"] = {
                        "Name": top.get("driver") or "local",
                        "Options": top.get("driver_opts") or {},
                    }
                mount["VolumeOptions"] = opts
            elif kind == "bind":
                source = Path(str(src)).expanduser()
                mount["Source"] = str(source if source.is_absolute() else (self.p.workdir / source).resolve())
                if (vol.get("bind") or {}).get("propagation"):
                    mount["BindOptions"] = {"Propagation": vol["bind"]["propagation"]}
            elif kind == "tmpfs" and (vol.get("tmpfs") or {}).get("size"):
                mount["TmpfsOptions"] = {"SizeBytes": ram_bytes(vol["tmpfs"]["size"])}
            out.append(mount)
        tmpfs = svc.get("tmpfs") or []
        for target in [tmpfs] if isinstance(tmpfs, str) else tmpfs:
            out.append({"Type": "tmpfs", "Target": target})
        return out

    def healthcheck(self, path: KeyPath, hc: dict[str, Any] | None) -> dict[str, Any] | None:
        if hc is None:
            return None
        if hc.get("disable"):
            if hc.get("test"):  # docker/cli convertHealthcheck's refusal
                raise self.fail((*path, "healthcheck", "disable"), "test and disable can't be set at the same time")
            return {"Test": ["NONE"]}
        test = hc.get("test")
        out: dict[str, Any] = {"Test": ["CMD-SHELL", test] if isinstance(test, str) else list(test or [])}
        for key, api in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")):
            ns = self.duration((*path, "healthcheck", key), hc.get(key))
            if ns is not None:
                out[api] = ns
        if hc.get("retries") is not None:
            out["Retries"] = int(hc["retries"])
        return out

    def file_refs(
        self, path: KeyPath, svc: dict[str, Any], kind: str, objs: dict[str, StackObject]
    ) -> list[dict[str, Any]]:
        out = []
        for item in svc.get(kind) or []:
            ref = {"source": item} if isinstance(item, str) else item
            obj = objs[ref["source"]]
            target = ref.get("target") or ref["source"]
            mode = ref.get("mode")
            file = {
                "Name": target,
                "UID": str(ref.get("uid") or "0"),
                "GID": str(ref.get("gid") or "0"),
                "Mode": int(str(mode), 8) if isinstance(mode, str) else (mode if mode is not None else 0o444),
            }
            key = "SecretName" if kind == "secrets" else "ConfigName"
            id_key = "SecretID" if kind == "secrets" else "ConfigID"
            # the ID is filled in once the object exists (deploy), as the docker CLI does
            out.append({"File": file, id_key: "", key: obj.name})
        return sorted(out, key=lambda r: r["File"]["Name"])

    def service_networks(
        self, path: KeyPath, short: str, svc: dict[str, Any], nets: dict[str, StackObject]
    ) -> list[dict[str, Any]]:
        declared = svc.get("networks")
        names = as_mapping(declared) if isinstance(declared, dict) else {n: None for n in declared or [DEFAULT_NETWORK]}
        out = []
        for key, cfg in names.items():
            aliases = list((cfg or {}).get("aliases") or [])
            # docker/cli convertServiceNetworks: the user's aliases, then the service's short name
            out.append({"Target": nets[key].name, "Aliases": [*[a for a in aliases if a != short], short]})
        return sorted(out, key=lambda n: n["Target"])

    @staticmethod
    def dns_config(svc: dict[str, Any]) -> dict[str, Any] | None:
        def listed(key: str) -> list[str]:
            value = svc.get(key) or []
            return [value] if isinstance(value, str) else [str(v) for v in value]

        out = {"Nameservers": listed("dns"), "Search": listed("dns_search"), "Options": listed("dns_opt")}
        return out if any(out.values()) else None

    @staticmethod
    def ulimits(value: dict[str, Any] | None) -> list[dict[str, Any]] | None:
        if not value:
            return None
        out = []
        for name, limit in sorted(value.items()):
            soft, hard = (limit, limit) if isinstance(limit, int) else (limit.get("soft"), limit.get("hard"))
            out.append({"Name": name, "Soft": soft, "Hard": hard})
        return out

    def mode(self, path: KeyPath, deploy: dict[str, Any]) -> dict[str, Any]:
        mode = deploy.get("mode") or "replicated"
        replicas = deploy.get("replicas")
        if mode == "global":
            if replicas is not None:
                raise self.fail((*path, "deploy", "replicas"), "replicas can only be used with replicated mode")
            return {"Global": {}}
        if mode == "replicated":
            return {"Replicated": {"Replicas": 1 if replicas is None else int(replicas)}}
        if mode == "replicated-job":
            return {
                "ReplicatedJob": {
                    "MaxConcurrent": 1 if replicas is None else int(replicas),
                    "TotalCompletions": 1 if replicas is None else int(replicas),
                }
            }
        if mode == "global-job":
            return {"GlobalJob": {}}
        raise self.fail(
            (*path, "deploy", "mode"), f"unknown mode {mode!r} (replicated, global, replicated-job or global-job)"
        )

    def update_config(self, path: KeyPath, cfg: dict[str, Any] | None) -> dict[str, Any] | None:
        if cfg is None:
            return None
        out: dict[str, Any] = {"Parallelism": int(1 if cfg.get("parallelism") is None else cfg["parallelism"])}
        for key, api in (("delay", "Delay"), ("monitor", "Monitor")):
            ns = self.duration((*path, key), cfg.get(key))
            if ns is not None:
                out[api] = ns
        if cfg.get("failure_action"):
            out["FailureAction"] = cfg["failure_action"]
        if cfg.get("max_failure_ratio") is not None:
            out["MaxFailureRatio"] = float(cfg["max_failure_ratio"])
        if cfg.get("order"):
            out["Order"] = cfg["order"]
        return out

    def resources(self, path: KeyPath, res: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, api in (("limits", "Limits"), ("reservations", "Reservations")):
            r = res.get(key)
            if not r:
                continue
            part: dict[str, Any] = {}
            try:
                if r.get("cpus") is not None:
                    part["NanoCPUs"] = nano_cpus(r["cpus"])
                if r.get("memory") is not None:
                    part["MemoryBytes"] = ram_bytes(r["memory"])
            except ValueError as exc:
                raise self.fail((*path, key), str(exc)) from None
            if r.get("pids") is not None:
                part["Pids"] = int(r["pids"])
            out[api] = part
        return out

    def restart_policy(self, path: KeyPath, rp: dict[str, Any] | None) -> dict[str, Any] | None:
        if rp is None:
            return None
        out: dict[str, Any] = {"Condition": rp.get("condition") or "any"}
        for key, api in (("delay", "Delay"), ("window", "Window")):
            ns = self.duration((*path, key), rp.get(key))
            if ns is not None:
                out[api] = ns
        if rp.get("max_attempts") is not None:
            out["MaxAttempts"] = int(rp["max_attempts"])
        return out

    def service(self, short: str, svc: dict[str, Any], stack: Stack) -> dict[str, Any]:
        path: KeyPath = ("services", short)
        image = svc.get("image")
        if not image:
            raise self.fail(path, "image is required: swarm mode does not build images (`build` is ignored)")
        deploy = svc.get("deploy") or {}
        container: dict[str, Any] = {
            "Image": image,
            "Labels": self.labels(svc.get("labels")),
        }

        def command(key: str) -> list[str] | None:
            value = svc.get(key)
            if value is None:
                return None
            try:
                return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
            except ValueError as exc:
                raise self.fail((*path, key), f"cannot split the command: {exc}") from None

        optional = {
            "Command": command("entrypoint"),
            "Args": command("command"),
            "Hostname": svc.get("hostname"),
            "Dir": svc.get("working_dir"),
            "User": svc.get("user"),
            "StopGracePeriod": self.duration((*path, "stop_grace_period"), svc.get("stop_grace_period")),
            "StopSignal": svc.get("stop_signal"),
            "Init": svc.get("init"),
            "ReadOnly": svc.get("read_only") or None,
            "CapabilityAdd": svc.get("cap_add") or None,
            "CapabilityDrop": svc.get("cap_drop") or None,
            "Sysctls": {k: str(v) for k, v in as_mapping(svc.get("sysctls")).items()} or None,
            "Env": self.env(path, svc) or None,
            "Mounts": self.mounts(path, svc) or None,
            "HealthCheck": self.healthcheck(path, svc.get("healthcheck")),
            "Secrets": self.file_refs(path, svc, "secrets", stack.secrets) or None,
            "Configs": self.file_refs(path, svc, "configs", stack.configs) or None,
            # converted as docker does; shoal's API refuses them while it has no such feature
            "Hosts": [f"{ip} {host}" for host, ip in as_mapping(svc.get("extra_hosts")).items()] or None,
            "DNSConfig": self.dns_config(svc),
            "TTY": svc.get("tty") or None,
            "OpenStdin": svc.get("stdin_open") or None,
            "Groups": [str(g) for g in svc.get("group_add") or []] or None,
            "Isolation": svc.get("isolation"),
            "Ulimits": self.ulimits(svc.get("ulimits")),
        }
        container.update({k: v for k, v in optional.items() if v is not None})
        placement = deploy.get("placement") or {}
        task: dict[str, Any] = {
            "ContainerSpec": container,
            "Networks": self.service_networks(path, short, svc, stack.networks),
            "Resources": self.resources((*path, "deploy", "resources"), deploy.get("resources") or {}),
            "Placement": {
                "Constraints": list(placement.get("constraints") or []),
                "Preferences": [
                    {"Spread": {"SpreadDescriptor": p["spread"]}} for p in placement.get("preferences") or []
                ],
                **(
                    {"MaxReplicas": int(placement["max_replicas_per_node"])}
                    if placement.get("max_replicas_per_node")
                    else {}
                ),
            },
        }
        logging = svc.get("logging")
        if logging:
            task["LogDriver"] = {"Name": logging.get("driver") or "", "Options": logging.get("options") or {}}
        rp = self.restart_policy((*path, "deploy", "restart_policy"), deploy.get("restart_policy"))
        if rp is not None:
            task["RestartPolicy"] = rp
        ports = []
        for i, p in enumerate(svc.get("ports") or []):
            try:
                ports += portspec.convert(p)
            except ValueError as exc:
                raise self.fail((*path, "ports", i), str(exc)) from None
        spec: dict[str, Any] = {
            "Name": self.scoped(short),
            "Labels": {**self.labels(deploy.get("labels")), IMAGE_LABEL: image},
            "TaskTemplate": task,
            "Mode": self.mode(path, deploy),
            "EndpointSpec": {
                "Mode": deploy.get("endpoint_mode") or "vip",
                "Ports": sorted(ports, key=lambda p: (p["PublishedPort"], p["TargetPort"], p["Protocol"])),
            },
        }
        for key, api in (("update_config", "UpdateConfig"), ("rollback_config", "RollbackConfig")):
            cfg = self.update_config((*path, "deploy", key), deploy.get(key))
            if cfg is not None:
                spec[api] = cfg
        return spec


def _used(project: Project, key: str) -> set[str]:
    used: set[str] = set()
    for svc in project.services.values():
        value = svc.get(key)
        if key == "networks":
            used |= set(as_mapping(value) if isinstance(value, dict) else value or [DEFAULT_NETWORK])
        else:
            used |= {i if isinstance(i, str) else i["source"] for i in value or []}
    return used


def _port_clashes(conv: _Converter, stack: Stack) -> None:
    """Two services of the stack publishing one port: the server would refuse the second only
    after the first was created."""
    owner: dict[tuple[int, str], str] = {}
    for short, spec in stack.services.items():
        for p in spec["EndpointSpec"]["Ports"]:
            if not p["PublishedPort"] or p["PublishMode"] == "host":
                continue
            key = (p["PublishedPort"], p["Protocol"])
            if key in owner and owner[key] != short:
                raise conv.fail(
                    ("services", short, "ports"),
                    f"port {key[0]}/{key[1]} is already published by service {owner[key]!r}",
                )
            owner[key] = short


def convert(project: Project, namespace: str) -> Stack:
    conv = _Converter(project, namespace)
    stack = Stack(namespace)
    stack.networks = conv.networks(_used(project, "networks"))
    stack.secrets = conv.files("secrets", _used(project, "secrets"))
    stack.configs = conv.files("configs", _used(project, "configs"))
    for short, svc in sorted(project.services.items()):
        stack.services[short] = conv.service(short, svc or {}, stack)
    _port_clashes(conv, stack)
    return stack
