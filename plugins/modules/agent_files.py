#!/usr/bin/python
# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
module: agent_files
short_description: Write several small files and directories on the managed host in one run
version_added: 0.1.0
description:
  - Makes sure each of O(directories) exists and each of O(files) holds the given content, with the given mode,
    owner and group, in one module run (one round trip), where a loop of M(ansible.builtin.file),
    M(ansible.builtin.copy) and M(ansible.builtin.template) tasks costs one or more Python starts on the host
    per item.
  - Every argument is checked before anything is changed (absolute and distinct paths, octal modes, existing
    owners and groups, no file or non-directory where a directory must be); a bad argument fails the task
    with nothing written.
  - A file is written only when its content differs, atomically (a temporary file in the same directory,
    synced, then renamed over the old one); when only its mode, owner or group differ they are set without
    rewriting it.
  - Directories are handled first, in the order given, then files. A missing parent directory (of a directory
    or of a file) is created with mode C(0755), owned by C(root:root).
  - It does not talk to the shoal agent; the P(shoal.swarm.agent#role) role uses it to write the agent's
    configuration.
author:
  - shoal developers (@shoal-swarm)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description:
      - Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
      - The diff is a list, one item per changed path, of its content (a file) or of its changed attributes.
    support: full
  idempotent:
    description:
      - When run twice in a row outside check mode with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled or queried by the module has not changed in a relevant way.
    support: full
options:
  directories:
    description:
      - Directories that must exist, created with their missing parents.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory. A symbolic link to a directory counts as the directory.
        type: path
        required: true
      mode:
        description: Permissions as an octal string with a leading zero, for example V("0755") (quote it in YAML).
        type: str
        default: "0755"
      owner:
        description: User name (or numeric id) that owns the directory.
        type: str
        default: root
      group:
        description: Group name (or numeric id) of the directory.
        type: str
        default: root
  files:
    description:
      - Regular files and their content. A path that exists must be a regular file (not a symbolic link).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file.
        type: path
        required: true
      content:
        description: The whole content of the file (written as UTF-8).
        type: str
        required: true
      mode:
        description: Permissions as an octal string with a leading zero, for example V("0644") (quote it in YAML).
        type: str
        default: "0644"
      owner:
        description: User name (or numeric id) that owns the file.
        type: str
        default: root
      group:
        description: Group name (or numeric id) of the file.
        type: str
        default: root
notes:
  - Uses only the Python standard library on the host.
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Write the agent's configuration and the registries' CAs
  shoal.swarm.agent_files:
    directories:
      - path: /etc/shoal
      - path: /opt/shoal
    files:
      - path: /etc/shoal/shoald.yml
        content: "{{ lookup('ansible.builtin.template', 'shoald.yml.j2') }}"
      - path: /etc/shoal/certs.d/registry.example.com:5000/ca.crt
        content: "{{ registry_ca_pem }}"
      - path: /etc/shoal/token
        content: "{{ shoal_token }}"
        mode: "0600"
  register: agent_files_result
  notify: Restart shoald
"""

RETURN = r"""
changed_paths:
  description:
    - The paths of O(directories) and O(files) that were created or modified (or would be, in check mode),
      in the order given, directories first.
  returned: always
  type: list
  elements: str
  sample: [/etc/shoal, /etc/shoal/shoald.yml]
"""

import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import re  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

MODE = re.compile(r"0[0-7]{3,4}")
PARENT_MODE = 0o755


class Invalid(Exception):
    """A bad argument, or a host where the arguments cannot be applied; raised before anything changes."""


def argument_spec() -> dict[str, Any]:
    def entry(mode: str, content: bool) -> dict[str, Any]:
        options: dict[str, Any] = {
            "path": {"type": "path", "required": True},
            "mode": {"type": "str", "default": mode},
            "owner": {"type": "str", "default": "root"},
            "group": {"type": "str", "default": "root"},
        }
        if content:
            options["content"] = {"type": "str", "required": True}
        return {"type": "list", "elements": "dict", "default": [], "options": options}

    return {"directories": entry("0755", content=False), "files": entry("0644", content=True)}


def show_mode(mode: int) -> str:
    return f"0{mode:03o}"


# owner -> the password database, group -> the group database; both entries hold (name, password, id, ...)
ACCOUNTS = {"owner": (pwd.getpwnam, pwd.getpwuid), "group": (grp.getgrnam, grp.getgrgid)}


def account_id(kind: str, name: str) -> int:
    """The uid (kind owner) or gid (kind group) of a name or a number."""
    try:
        return ACCOUNTS[kind][0](name)[2]
    except KeyError:
        if name.isdigit():
            return int(name)
        raise Invalid(f"unknown {kind} {name!r}") from None


def account_name(kind: str, number: int) -> str:
    try:
        return ACCOUNTS[kind][1](number)[0]
    except KeyError:
        return str(number)


class Entry:
    """One directory or file of the arguments, what it is on the host now and what must change."""

    def __init__(self, kind: str, item: dict[str, Any]) -> None:
        self.kind = kind
        raw = item["path"]
        if not os.path.isabs(raw):
            raise Invalid(f"{kind} path must be absolute: {raw!r}")
        self.path = os.path.normpath(raw)
        if not MODE.fullmatch(item["mode"]):
            raise Invalid(
                f"{self.path}: mode must be an octal string with a leading zero like '0644': {item['mode']!r}"
            )
        self.mode = int(item["mode"], 8)
        self.uid, self.owner = account_id("owner", item["owner"]), item["owner"]
        self.gid, self.group = account_id("group", item["group"]), item["group"]
        self.content: bytes | None = item["content"].encode() if kind == "file" else None
        self.before: dict[str, Any] | None = None  # None: absent
        self.old_content = b""
        self.write = False  # a file: (re)write its content
        self.attributes: list[str] = []  # mode, owner, group that differ on an existing path

    def inspect(self) -> None:
        """Read the path's state; raise Invalid when the path cannot become what was asked."""
        check_parents(self.path)
        try:
            st = os.stat(self.path) if self.kind == "directory" else os.lstat(self.path)
        except FileNotFoundError:
            self.write = self.kind == "file"
            return
        if self.kind == "directory" and not stat.S_ISDIR(st.st_mode):
            raise Invalid(f"{self.path} exists and is not a directory")
        if self.kind == "file":
            if not stat.S_ISREG(st.st_mode):
                raise Invalid(f"{self.path} exists and is not a regular file")
            with open(self.path, "rb") as handle:
                self.old_content = handle.read()
            self.write = self.old_content != self.content
        self.before = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
        if self.before["mode"] != self.mode:
            self.attributes.append("mode")
        if self.before["uid"] != self.uid:
            self.attributes.append("owner")
        if self.before["gid"] != self.gid:
            self.attributes.append("group")

    @property
    def changed(self) -> bool:
        return self.before is None or self.write or bool(self.attributes)

    def diff(self) -> dict[str, str]:
        header = {"before_header": self.path, "after_header": self.path}
        if self.kind == "file" and (self.before is None or self.write):
            return {**header, "before": self.old_content.decode(errors="replace"), "after": self.content.decode()}
        if self.before is None:
            return {**header, "before": "state: absent\n", "after": "state: directory\n"}
        old = {
            "mode": show_mode(self.before["mode"]),
            "owner": account_name("owner", self.before["uid"]),
            "group": account_name("group", self.before["gid"]),
        }
        new = {"mode": show_mode(self.mode), "owner": self.owner, "group": self.group}
        return {
            **header,
            "before": "".join(f"{name}: {old[name]}\n" for name in self.attributes),
            "after": "".join(f"{name}: {new[name]}\n" for name in self.attributes),
        }

    def apply(self) -> None:
        make_parents(os.path.dirname(self.path))
        if self.kind == "directory":
            if not os.path.isdir(self.path):
                os.mkdir(self.path, 0o700)  # the final mode comes below, never wider in between
        elif self.write:
            write_atomically(self.path, self.content or b"", self.mode, self.uid, self.gid)
            return
        st = os.stat(self.path)
        if (st.st_uid, st.st_gid) != (self.uid, self.gid):
            os.chown(self.path, self.uid, self.gid)
        if stat.S_IMODE(st.st_mode) != self.mode or (st.st_uid, st.st_gid) != (self.uid, self.gid):
            os.chmod(self.path, self.mode)  # after chown, which clears the set-id bits


def check_parents(path: str) -> None:
    """The nearest existing ancestor of ``path`` must be a directory."""
    parent = os.path.dirname(path)
    while not os.path.lexists(parent) and parent != os.path.dirname(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise Invalid(f"cannot create {path}: {parent} is not a directory")


def make_parents(path: str) -> None:
    if os.path.isdir(path):
        return
    make_parents(os.path.dirname(path))
    os.mkdir(path, PARENT_MODE)
    os.chown(path, 0, 0)
    os.chmod(path, PARENT_MODE)  # not narrowed by the umask


def write_atomically(path: str, content: bytes, mode: int, uid: int, gid: int) -> None:
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.lexists(temp):
            os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def plan(params: dict[str, Any]) -> list[Entry]:
    """Every entry, validated and inspected; raises Invalid before anything is changed."""
    entries = [Entry("directory", item) for item in params["directories"]]
    entries += [Entry("file", item) for item in params["files"]]
    seen: set[str] = set()
    for entry in entries:
        if entry.path in seen:
            raise Invalid(f"duplicate path {entry.path}")
        seen.add(entry.path)
    for entry in entries:
        if entry.kind == "file":
            inside = [other.path for other in entries if other.path.startswith(entry.path.rstrip("/") + "/")]
            if inside:
                raise Invalid(f"{inside[0]} is inside {entry.path}, which is a file")
    for entry in entries:
        entry.inspect()
    return entries


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        entries = plan(module.params)
    except Invalid as exc:
        module.fail_json(msg=str(exc), changed=False, changed_paths=[])
    except OSError as exc:
        module.fail_json(msg=f"cannot read {exc.filename}: {exc.strerror}", changed=False, changed_paths=[])
    changing = [entry for entry in entries if entry.changed]
    result: dict[str, Any] = {"changed": bool(changing), "changed_paths": [entry.path for entry in changing]}
    if module._diff:
        result["diff"] = [entry.diff() for entry in changing]
    if not module.check_mode:
        done: list[str] = []
        for entry in changing:
            try:
                entry.apply()
            except OSError as exc:
                module.fail_json(msg=f"{entry.path}: {exc}", changed=bool(done), changed_paths=done)
            done.append(entry.path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
