"""Build the shoal wheelhouse on the controller, once per version of the agent's source.

Hosts have no package index: the agent role copies one archive of wheels (shoal and all its
dependencies) to each host and installs from it offline. This script makes that archive with
`pip wheel`, keyed by a digest of the source, and does nothing when the digest has not changed.
Dependencies and build requirements are fetched (package index or pip's cache) only when their
lists change; a change of shoal's own source rebuilds only its wheel, offline.
Beside each wheel, the archive holds its modules' bytecode, compiled here by the target Python (checked-hash .pyc
files, valid whatever the files' times on the host): the agent's first start on a host then compiles nothing
(about 0.6 s of CPU per host, a minute on a VM under software emulation). The role ships the archive as the
payload of a self-extracting installer (install_wheelhouse.sh followed by the archive): one file, one task, no
module process on the host.
It prints one JSON line: {"changed": bool, "digest": str, "archive": str, "installer": str, "wheels": [...]}.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

ARCHIVE = "shoal-wheelhouse.tar"
INSTALLER = "shoal-install.sh"
DIGEST_FILE = "source.digest"
# the installer's shell part: the archive follows its last line (PAYLOAD_MARKER)
INSTALL_SCRIPT = Path(__file__).resolve().with_name("install_wheelhouse.sh")
PAYLOAD_MARKER = b"#__SHOAL_WHEELHOUSE_PAYLOAD__\n"
# beside each wheel in the archive: its modules' bytecode, site-packages' layout (WHEEL + PYC_SUFFIX)
PYC_SUFFIX = ".pyc.tar.gz"
SKIP_DIRS = {"__pycache__", "build", "dist", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


def source_files(source: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(names):
            if not name.endswith((".pyc", ".pyo")):
                files.append(Path(root) / name)
    return files


def python_tag(python: str) -> str:
    if os.path.realpath(python) == os.path.realpath(sys.executable):  # the usual case: no second interpreter start
        return f"{sys.version_info[:2]} {sysconfig.get_platform()}"  # as the subprocess prints it
    return subprocess.run(
        [python, "-c", "import sys, sysconfig; print(sys.version_info[:2], sysconfig.get_platform())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def source_digest(source: Path, tag: str) -> str:
    """sha256 over every source file's path and bytes, the target Python's version and platform, and
    this script and the installer's (a change of recipe makes a new wheelhouse)."""
    digest = hashlib.sha256(tag.encode() + Path(__file__).read_bytes() + INSTALL_SCRIPT.read_bytes())
    for path in source_files(source):
        digest.update(str(path.relative_to(source)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def pip_wheel(python: str, wheel_dir: Path, *args: str) -> None:
    cmd = [python, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", str(wheel_dir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


def requirements(source: Path) -> tuple[list[str], list[str]]:
    """(shoal's dependencies; its build requirements). No pip: install_wheelhouse.sh unpacks the wheels itself."""
    try:
        with open(source / "pyproject.toml", "rb") as fh:
            project = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"{source} is not the shoal agent package (pyproject.toml: {exc})") from None
    if not isinstance(project.get("project"), dict):
        # e.g. the repository's root, whose pyproject.toml only configures tools (agent_source is its agent/)
        raise SystemExit(f"{source} is not the shoal agent package (its pyproject.toml has no [project] table)")
    runtime = sorted(project["project"].get("dependencies", []))
    build = sorted(project.get("build-system", {}).get("requires", ["setuptools", "wheel"]))
    return runtime, build


def fetch(python: str, dest: Path, name: str, reqs: list[str], tag: str) -> Path:
    """Wheels of ``reqs`` in dest/name, made again only when the list (or the target Python) changes."""
    digest = hashlib.sha256(json.dumps([tag, reqs]).encode()).hexdigest()[:32]
    folder, stamp = dest / name, dest / f"{name}.digest"
    if stamp.exists() and stamp.read_text().strip() == digest and folder.is_dir():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        stamp.unlink()
    folder.mkdir(parents=True)
    if reqs:
        pip_wheel(python, folder, *reqs)
    stamp.write_text(digest + "\n")
    return folder


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """One file of a deterministic tar: fixed owner, mode and time."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
    tar.addfile(info, io.BytesIO(data))


def site_path(name: str) -> str | None:
    """Where a wheel's member lands relative to site-packages (as install_wheelhouse.sh puts it), or None
    (scripts, headers, data: outside site-packages)."""
    parts = name.split("/")
    if parts[0].endswith(".data"):
        return "/".join(parts[2:]) if len(parts) > 2 and parts[1] in ("purelib", "platlib") else None
    return name


# The modules the agent's start imports, printed by the target Python over the unpacked wheels: their bytecode is
# what a host would compile (and write) at shoald's first start. Other modules compile on first use, as before.
IMPORTED = """
import sys
sys.path.insert(0, sys.argv[1])
import shoal.daemon
print(sys.implementation.cache_tag)
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None) or ""
    if path.startswith(sys.argv[1] + "/") and path.endswith(".py"):
        print(path[len(sys.argv[1]) + 1:])
"""


def compiled(python: str, wheels: dict[str, Path], tmp: Path, entry: str = "shoal.daemon") -> dict[str, bytes]:
    """Per wheel, a gzipped tar of the bytecode of its modules that the agent's start imports (all its modules when
    that import fails here), paths relative to site-packages (pkg/__pycache__/mod.cpython-311.pyc), compiled by the
    target Python: checked-hash .pyc files (valid for the same source bytes whatever their times) that name no
    folder of this machine. Deterministic. Only the imported ones: each file is one more to create on the host."""
    stage = tmp / "site"
    owner: dict[str, str] = {}  # module path (site-packages' layout) -> its wheel
    for name, path in wheels.items():
        with zipfile.ZipFile(path) as whl:
            for item in whl.infolist():
                rel = site_path(item.filename)
                if rel and not item.is_dir():
                    target = stage / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(whl.read(item))
                    if rel.endswith(".py"):
                        owner[rel] = name
    if not owner:
        return {}
    probe = subprocess.run(
        [python, "-B", "-c", IMPORTED.replace("shoal.daemon", entry), str(stage)],  # -B: writes no .pyc of its own
        capture_output=True,
        text=True,
        check=False,
    )
    lines = probe.stdout.split() if probe.returncode == 0 else []
    tag, wanted = (lines[0], sorted(set(lines[1:]) & set(owner))) if lines else ("", [])
    if not wanted:
        tag = subprocess.run(
            [python, "-c", "import sys; print(sys.implementation.cache_tag)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"importing {entry} failed, all modules compiled: {probe.stderr.strip()[-1000:]}", file=sys.stderr)
        wanted = sorted(owner)
    cmd = [python, "-m", "compileall", "-q", "-f", "--invalidation-mode", "checked-hash", "-s", str(stage), "-i", "-"]
    proc = subprocess.run(
        cmd, input="".join(f"{stage / rel}\n" for rel in wanted), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:  # a module that does not compile: no bytecode for it (the host compiles it as before)
        print(f"compileall: {proc.stdout.strip()[-2000:]}", file=sys.stderr)
    out: dict[str, bytes] = {}
    for name in sorted(wheels):
        buf = io.BytesIO()
        count = 0
        with (
            gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w") as tar,
        ):
            for rel in wanted:
                source = stage / rel
                # the target Python's cache tag (pkg/__pycache__/mod.cpython-311.pyc), not this one's
                pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
                if owner[rel] != name or not pyc.exists():
                    continue
                add_member(tar, pyc.relative_to(stage).as_posix(), pyc.read_bytes())
                count += 1
        if count:
            out[name + PYC_SUFFIX] = buf.getvalue()
    return out


def write_installer(archive: Path, out: Path) -> None:
    """install_wheelhouse.sh, then the archive: the one file the role runs on each host."""
    script = INSTALL_SCRIPT.read_bytes()
    if not script.endswith(PAYLOAD_MARKER):
        raise SystemExit(f"{INSTALL_SCRIPT} does not end with the payload marker {PAYLOAD_MARKER!r}")
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as fh, open(archive, "rb") as payload:
        fh.write(script)
        shutil.copyfileobj(payload, fh, 1 << 20)
    tmp.chmod(0o755)
    tmp.replace(out)


def build(source: Path, python: str, dest: Path, tag: str, out: Path) -> list[str]:
    """The dependencies' wheels plus a fresh shoal wheel, in one deterministic archive.

    The shoal wheel is built from a clean copy of the source (no build/ or egg-info lands in the
    tree), offline: its build requirements come from dest/build-deps, fetched with the dependencies.
    """
    runtime, build_reqs = requirements(source)
    deps = fetch(python, dest, "deps", runtime, tag)
    build_deps = fetch(python, dest, "build-deps", build_reqs, tag)
    with tempfile.TemporaryDirectory(prefix="shoal-wheel-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(*SKIP_DIRS, "*.egg-info", "*.pyc", "*.pyo"))
        wheels = Path(tmp) / "wheels"
        pip_wheel(python, wheels, "--no-deps", "--no-index", "--find-links", str(build_deps), str(copy))
        if not any(p.name.startswith("shoal-") for p in wheels.glob("*.whl")):
            raise SystemExit(f"pip wheel made no shoal wheel from {source}")
        files = {p.name: p for p in [*deps.glob("*.whl"), *wheels.glob("*.whl")]}
        write_archive(python, files, Path(tmp), out)
        return sorted(files)


def write_archive(python: str, wheels: dict[str, Path], tmp: Path, out: Path, entry: str = "shoal.daemon") -> None:
    """The wheels and their bytecode (compiled()) in one deterministic tar: names sorted, fixed owner and time."""
    members = {name: path.read_bytes() for name, path in wheels.items()}
    members.update(compiled(python, wheels, tmp, entry))
    tmp_archive = out.with_suffix(".tmp")
    with tarfile.open(tmp_archive, "w") as tar:
        for name in sorted(members):
            add_member(tar, name, members[name])
    tmp_archive.replace(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path, help="the agent package (with pyproject.toml)")
    parser.add_argument("--dest", required=True, type=Path, help="folder for the archive and its digest")
    parser.add_argument("--python", default=sys.executable, help="Python whose pip builds the wheels")
    args = parser.parse_args()
    source = args.source.resolve()
    if not (source / "pyproject.toml").is_file():
        raise SystemExit(f"{source} is not the shoal agent package (no pyproject.toml)")
    args.dest.mkdir(parents=True, exist_ok=True)
    archive = args.dest / ARCHIVE
    installer = args.dest / INSTALLER
    with open(args.dest / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two playbooks at once build once
        tag = python_tag(args.python)
        digest = source_digest(source, tag)
        stamp = args.dest / DIGEST_FILE
        current = stamp.read_text().strip() if stamp.exists() else ""
        changed = current != digest or not archive.exists() or not installer.exists()
        if changed:
            with contextlib.suppress(FileNotFoundError):
                stamp.unlink()
            names = build(source, args.python, args.dest, tag, archive)
            write_installer(archive, installer)
            stamp.write_text(digest + "\n")
        else:
            with tarfile.open(archive) as tar:
                names = [n for n in tar.getnames() if n.endswith(".whl")]
    answer = {"changed": changed, "digest": digest, "archive": str(archive), "installer": str(installer)}
    print(json.dumps({**answer, "wheels": names}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
