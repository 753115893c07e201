"""Build the shoal wheelhouse on the controller, once per version of the agent's source.

Hosts have no package index: the agent role copies one archive of wheels (shoal and all its
dependencies) to each host and installs from it offline. This script makes that archive with
`pip wheel`, keyed by a digest of the source, and does nothing when the digest has not changed.
Dependencies and build requirements are fetched (package index or pip's cache) only when their
lists change; a change of shoal's own source rebuilds only its wheel, offline.
It prints one JSON line: {"changed": bool, "digest": str, "archive": str, "wheels": [...]}.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
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
from pathlib import Path

ARCHIVE = "shoal-wheelhouse.tar"
DIGEST_FILE = "source.digest"
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
    this script (a change of recipe makes a new wheelhouse)."""
    digest = hashlib.sha256(tag.encode() + Path(__file__).read_bytes())
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
        tmp_archive = out.with_suffix(".tmp")
        with tarfile.open(tmp_archive, "w") as tar:  # deterministic: names sorted, fixed owner and time
            for name in sorted(files):
                data = files[name].read_bytes()
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
                tar.addfile(info, io.BytesIO(data))
        tmp_archive.replace(out)
        return sorted(files)


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
    with open(args.dest / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two playbooks at once build once
        tag = python_tag(args.python)
        digest = source_digest(source, tag)
        stamp = args.dest / DIGEST_FILE
        current = stamp.read_text().strip() if stamp.exists() else ""
        changed = current != digest or not archive.exists()
        if changed:
            with contextlib.suppress(FileNotFoundError):
                stamp.unlink()
            names = build(source, args.python, args.dest, tag, archive)
            stamp.write_text(digest + "\n")
        else:
            with tarfile.open(archive) as tar:
                names = tar.getnames()
    print(json.dumps({"changed": changed, "digest": digest, "archive": str(archive), "wheels": names}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
