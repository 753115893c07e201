# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
name: agent_wheelhouse
short_description: Build (once per source digest) the wheelhouse the agent role installs shoal from
version_added: 0.1.0
description:
  - Runs the agent role's C(build_wheelhouse.py) on the controller and returns what it printed, the archive of
    shoal's wheel and its dependencies' wheels (with their modules' bytecode, compiled by O(python)) and the
    self-extracting installer (C(install_wheelhouse.sh) followed by the archive) that the role runs on each host
    to install offline.
  - The archive is made again only when the agent's source (or the recipe, or the target Python) changed; otherwise
    this is one short process that hashes the source.
  - A lookup rather than a task, so that the controller starts no module process for it; a failed build fails with
    the build's own message.
author:
  - shoal developers (@shoal-swarm)
options:
  source:
    description: The agent package (the folder with shoal's C(pyproject.toml)).
    type: path
    required: true
  dest:
    description: Folder that keeps the archive, its source digest and the dependencies' wheels.
    type: path
    required: true
  python:
    description: Python on the controller whose pip builds the wheels (the hosts' Python minor version).
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Remember the wheelhouse
  ansible.builtin.set_fact:
    wheelhouse: >-
      {{ lookup('shoal.swarm.agent_wheelhouse', source=agent_source, dest=agent_wheelhouse_dir,
                python=ansible_playbook_python) }}
  run_once: true
"""

RETURN = r"""
_raw:
  description: One dictionary, the build's answer.
  type: list
  elements: dict
  contains:
    changed:
      description: Whether the archive was made in this call.
      type: bool
    digest:
      description: Digest of the source, target Python and recipe the archive was made from.
      type: str
    archive:
      description: Path of the archive on the controller.
      type: str
    installer:
      description: Path of the installer that carries the archive (run as C(PATH PYTHON PREFIX MARKER)).
      type: str
    wheels:
      description: File names of the wheels in the archive.
      type: list
      elements: str
"""

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

# the role's script: also runnable alone (python build_wheelhouse.py --help)
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "agent" / "files" / "build_wheelhouse.py"


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        argv = [sys.executable, str(BUILD_SCRIPT)]
        for name in ("source", "dest", "python"):
            argv += [f"--{name}", str(self.get_option(name))]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise AnsibleLookupError(f"building the wheelhouse failed: {(proc.stderr or proc.stdout).strip()}")
        try:
            return [json.loads(proc.stdout)]
        except ValueError:
            raise AnsibleLookupError(f"the wheelhouse build printed no JSON: {proc.stdout.strip()[:500]}") from None
