#!/bin/sh
# Install shoal from the wheelhouse archive, offline, into its own virtual environment.
# The wheelhouse is already resolved (build_wheelhouse.py): installing is unpacking each wheel into
# the venv's site-packages and writing its console scripts, which the few lines of Python below do
# with the standard library. pip (not in the archive) would take minutes of CPU on a slow host (a
# VM under software emulation) to reach the same result. Files of an earlier version of a project
# (its RECORD) are removed first, so an upgrade leaves nothing stale. Each wheel's bytecode, compiled
# on the controller, comes beside it (WHEEL.pyc.tar.gz) and is installed with it: shoald's first start
# compiles nothing.
# build_wheelhouse.py appends the archive to this script (after the marker line at its end): the role
# ships one file and runs it (ansible.builtin.script), with no copy task and no module on the host.
# Usage: shoal-install.sh PYTHON PREFIX MARKER
set -eu
python=$1
prefix=$2
marker=$3
wheels="$prefix/wheelhouse"
venv="$prefix/venv"
rm -rf "$wheels" "$prefix/wheelhouse.tar" # the archive copied by earlier versions of the role
mkdir -p "$wheels"
# the archive: what follows the marker line
start=$(awk '/^#__SHOAL_WHEELHOUSE_PAYLOAD__$/ { print NR + 1; exit }' "$0")
[ -n "$start" ] || {
    echo "$0 carries no wheelhouse (run the shoal-install.sh that build_wheelhouse.py makes)" >&2
    exit 2
}
tail -n +"$start" "$0" | tar -xf - -C "$wheels"
ls "$wheels"/*.whl >/dev/null 2>&1 || {
    echo "$0 carries no wheel (run the shoal-install.sh that build_wheelhouse.py makes)" >&2
    exit 2
}
if [ ! -x "$venv/bin/python" ]; then
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
fi
"$venv/bin/python" - "$venv" "$wheels" <<'EOF'
import base64
import configparser
import csv
import hashlib
import io
import os
import re
import shutil
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

venv, wheels = Path(sys.argv[1]), Path(sys.argv[2])
site = Path(sysconfig.get_paths()["purelib"])
bindir = venv / "bin"


def project(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def uninstall(name):
    for info in site.glob("*.dist-info"):
        # NAME-VERSION.dist-info (the version's hyphen, not dist-info's)
        if project(info.name.removesuffix(".dist-info").rsplit("-", 1)[0]) != name:
            continue
        record = info / "RECORD"
        if record.exists():
            for row in csv.reader(io.StringIO(record.read_text())):
                if row and not row[0].startswith(".."):
                    path = site / row[0]
                    if path.is_file() or path.is_symlink():
                        path.unlink()
                elif row:
                    (site / row[0]).resolve().unlink(missing_ok=True)
        shutil.rmtree(info, ignore_errors=True)


def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


for whl in sorted(wheels.glob("*.whl")):
    name = project(whl.name.split("-")[0])
    uninstall(name)
    records = []
    with zipfile.ZipFile(whl) as z:
        distinfo = next(n.split("/")[0] for n in z.namelist() if n.split("/")[0].endswith(".dist-info"))
        for item in z.infolist():
            if item.is_dir():
                continue
            parts = item.filename.split("/")
            if parts[0].endswith(".data"):
                kind, rest = parts[1], "/".join(parts[2:])
                dest = {"purelib": site, "platlib": site, "scripts": bindir}.get(kind, venv) / rest
            else:
                dest = site / item.filename
            data = z.read(item)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            if (item.external_attr >> 16) & 0o111:
                dest.chmod(0o755)
            records.append((os.path.relpath(dest, site), digest(data), str(len(data))))
    # the bytecode the controller compiled for this wheel's modules (site-packages' layout)
    compiled = whl.with_name(whl.name + ".pyc.tar.gz")
    if compiled.exists():
        with tarfile.open(compiled) as tar:
            for member in tar.getmembers():
                if not member.isfile() or member.name.startswith("/") or ".." in member.name.split("/"):
                    continue
                data = tar.extractfile(member).read()
                dest = site / member.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
                records.append((member.name, digest(data), str(len(data))))
    entry_points = site / distinfo / "entry_points.txt"
    if entry_points.exists():
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.optionxform = str
        parser.read(entry_points)
        for script, target in parser.items("console_scripts") if parser.has_section("console_scripts") else []:
            module, _, attr = target.strip().partition(":")
            path = bindir / script
            path.write_text(
                f"#!{bindir / 'python'}\nimport sys\nfrom {module} import {attr.split('.')[0]}\n"
                f"sys.exit({attr}())\n"
            )
            path.chmod(0o755)
            records.append((os.path.relpath(path, site), "", ""))
    (site / distinfo / "INSTALLER").write_text("shoal\n")
    with open(site / distinfo / "RECORD", "w", newline="") as out:
        csv.writer(out).writerows([*records, (f"{distinfo}/RECORD", "", "")])
EOF
# the install is whole: the console script is in place and the package's metadata reads (not `shoald
# --version`, which imports all of the agent, 1.1 s of CPU per host, again at its start right after)
[ -x "$venv/bin/shoald" ]
"$venv/bin/python" -c 'import importlib.metadata as m; print("shoald", m.version("shoal"))'
rm -f "$venv"/.shoal-wheelhouse-*
touch "$marker"
exit 0
#__SHOAL_WHEELHOUSE_PAYLOAD__
