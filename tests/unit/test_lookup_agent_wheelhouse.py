"""The agent_wheelhouse lookup runs the role's build script on the controller and fails with the script's message."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible import constants as C
from ansible.errors import AnsibleLookupError

import unit.test_module_support  # noqa: F401  (puts the collection on sys.path)

from ansible_collections.shoal.swarm.plugins.lookup import agent_wheelhouse  # isort: skip


def lookup(**options: str) -> list[dict]:
    """The plugin with its documented options, as Ansible's plugin loader would set them up."""
    name = "shoal.swarm.agent_wheelhouse"
    definitions = yaml.safe_load(agent_wheelhouse.DOCUMENTATION)["options"]
    C.config.initialize_plugin_configuration_definitions("lookup", name, definitions)
    plugin = agent_wheelhouse.LookupModule()
    plugin._load_name = name
    return plugin.run([], variables={}, **options)


def test_the_script_is_the_roles() -> None:
    assert agent_wheelhouse.BUILD_SCRIPT.is_file()
    assert agent_wheelhouse.BUILD_SCRIPT.parent.parent.name == "agent"


def test_an_up_to_date_wheelhouse_is_answered_without_a_build(tmp_path: Path) -> None:
    """A stand-in archive whose digest is current: the script only hashes the source and lists the archive."""
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\ndependencies = []\n')
    (source / "pkg" / "a.py").write_text("A = 1\n")
    dest = tmp_path / "wheelhouse"
    dest.mkdir()
    sys.path.insert(0, str(agent_wheelhouse.BUILD_SCRIPT.parent))
    try:
        import build_wheelhouse  # the role's script, as a module

        tag = build_wheelhouse.python_tag(sys.executable)
        (dest / build_wheelhouse.DIGEST_FILE).write_text(build_wheelhouse.source_digest(source, tag) + "\n")
    finally:
        sys.path.pop(0)
    with tarfile.open(dest / "shoal-wheelhouse.tar", "w") as tar:
        tar.add(source / "pyproject.toml", arcname="x-1-py3-none-any.whl")
    (answer,) = lookup(source=str(source), dest=str(dest), python=sys.executable)
    assert answer["changed"] is False
    assert answer["wheels"] == ["x-1-py3-none-any.whl"]
    assert answer["digest"] == (dest / "source.digest").read_text().strip()
    assert json.loads(json.dumps(answer)) == answer


def test_a_failed_build_fails_with_the_scripts_message(tmp_path: Path) -> None:
    with pytest.raises(AnsibleLookupError, match="is not the shoal agent package"):
        lookup(source=str(tmp_path), dest=str(tmp_path / "wh"), python=sys.executable)
    assert not (tmp_path / "wh" / "shoal-wheelhouse.tar").exists()
