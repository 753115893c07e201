# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations


class ModuleDocFragment:
    # swarm_service's container options, in community.docker's docker_swarm_service shapes
    # (plugins/module_utils/_shoal_container.py implements them).
    DOCUMENTATION = r"""
options:
  mounts:
    description:
      - The service's mounts (C(ContainerSpec.Mounts)), as C(docker service create --mount) makes them.
      - A V(bind) source must exist on every node that runs a task, or the task is rejected.
      - A V(volume) is a volume of the node's C(local) driver, created on first use and kept when the task ends;
        without O(mounts[].source) every task gets an anonymous volume of its own.
      - Give an empty list to remove every mount.
    type: list
    elements: dict
    suboptions:
      source:
        description: Host path (V(bind)) or volume name (V(volume)); not for V(tmpfs).
        type: str
      target:
        description: Absolute path inside the container.
        type: str
        required: true
      type:
        description: The kind of mount.
        type: str
        choices: [bind, volume, tmpfs]
        default: bind
      readonly:
        description: Mount read-only.
        type: bool
      labels:
        description: Labels of a volume created for this mount.
        type: dict
      propagation:
        description: Bind propagation.
        type: str
        choices: [shared, slave, private, rshared, rslave, rprivate]
      no_copy:
        description: Do not copy the image's content at the target into a new volume.
        type: bool
      driver_config:
        description: Volume driver; only the C(local) driver without options is supported.
        type: dict
        suboptions:
          name:
            description: Driver name.
            type: str
          options:
            description: Driver options.
            type: dict
      tmpfs_size:
        description: Size of a V(tmpfs), for example V(64M).
        type: str
      tmpfs_mode:
        description: File mode of a V(tmpfs) as an integer (for example V(1023) for C(01777)).
        type: int
  dns:
    description: DNS servers the tasks ask after the embedded DNS (C(127.0.0.11)).
    type: list
    elements: str
  dns_search:
    description: DNS search domains.
    type: list
    elements: str
  dns_options:
    description: Resolver options (C(options) in C(/etc/resolv.conf)).
    type: list
    elements: str
  hosts:
    description: Extra C(/etc/hosts) entries, host name to IP address.
    type: dict
  sysctls:
    description: Namespaced kernel parameters (C(net.*), C(fs.mqueue.*) and the IPC ones Docker allows).
    type: dict
  ulimits:
    description: Resource limits as C(type:soft[:hard]), for example V(nofile:1024:2048).
    type: list
    elements: str
  cap_add:
    description: Linux capabilities to add to the default set.
    type: list
    elements: str
  cap_drop:
    description: Linux capabilities to drop from the default set.
    type: list
    elements: str
  init:
    description: Run an init process (catatonit or tini) as PID 1 of each task.
    type: bool
  read_only:
    description: Mount the task's root filesystem read-only.
    type: bool
"""
