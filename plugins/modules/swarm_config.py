#!/usr/bin/python
# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_config
short_description: Create and remove configs of a shoal swarm
version_added: 0.2.0
description:
  - Manages one config of a shoal swarm, shaped after community.docker's docker_config and C(docker config create|rm).
  - The task must run on a manager (use C(delegate_to) and C(run_once)).
  - The data is not logged (C(no_log)) nor shown in diffs, although the swarm returns a config's data.
  - Whether the data changed is decided by a SHA-224 digest of it kept in the V(ansible_key) label, as
    community.docker does. Data cannot change in place; a config whose data changed is removed and created
    again (which the swarm refuses while a service uses it; the task then fails and nothing changes), or with
    O(rolling_versions=true) created as the next version C(NAME_vN). Labels change in place.
author:
  - shoal developers (@shoal-swarm)
extends_documentation_fragment:
  - shoal.swarm.shoal
  - shoal.swarm.shoal.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the name, the labels and whether the data changes, never the data.
  idempotent:
    support: full
options:
  name:
    description:
      - Name of the config (with O(rolling_versions), the prefix of C(NAME_vN)).
    type: str
    required: true
  data:
    description:
      - The config's content. Mutually exclusive with O(data_src); one of them is required with O(state=present).
    type: str
  data_is_b64:
    description:
      - O(data) is base64-encoded (for binary content).
    type: bool
    default: false
  data_src:
    description:
      - A file on the managed host to read the content from.
    type: path
  labels:
    description:
      - Labels of the config (strings; other values are turned into strings). Left out, the labels in place are kept.
    type: dict
  force:
    description:
      - Remove and create the config again even if its data did not change.
    type: bool
    default: false
  rolling_versions:
    description:
      - Instead of replacing the config, create C(NAME_v1), C(NAME_v2), ... (label V(ansible_version)), so that
        services move to the new one with an update (C(--config-rm) old, C(--config-add) new with the same target).
    type: bool
    default: false
  versions_to_keep:
    description:
      - With O(rolling_versions), how many versions to keep; older ones are removed, except those still in use
        (a warning says which were kept).
    type: int
    default: 5
  state:
    description:
      - V(present) creates the config (or replaces it when its data changed); V(absent) removes it (every version
        with O(rolling_versions)).
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: shoal.swarm.swarm_service
"""

EXAMPLES = r"""
- name: A config from a value
  shoal.swarm.swarm_config:
    name: app_config
    data: "{{ lookup('file', 'app.conf') }}"
    labels:
      app: web
  delegate_to: "{{ groups['managers'][0] }}"
  run_once: true

- name: A config from a file on the manager, versioned
  shoal.swarm.swarm_config:
    name: app_file
    data_src: /etc/app/config.txt
    rolling_versions: true
    versions_to_keep: 2

- name: Remove it
  shoal.swarm.swarm_config:
    name: app_config
    state: absent
"""

RETURN = r"""
config_id:
  description: ID of the config (empty when it does not exist, or in check mode before it is created).
  returned: always
  type: str
  sample: 2g9w4ysdbm9sjzyqtvmmduaqk
config_name:
  description: Name of the config (with O(rolling_versions), C(NAME_vN)).
  returned: always
  type: str
  sample: app_config
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
  sample: [config created]
changes:
  description: What differs from the config in place (V(state), V(data) or V(labels)).
  returned: always
  type: list
  elements: str
  sample: [data]
"""

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_payloads import PayloadTask  # noqa: E402
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import run_task  # noqa: E402


class ConfigTask(PayloadTask):
    kind = "config"


def main() -> None:
    run_task(ConfigTask)


if __name__ == "__main__":
    main()
