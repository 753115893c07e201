"""The agent role's self-extracting installer (build_wheelhouse.py's archive appended to install_wheelhouse.sh), run
for real into a temporary prefix: wheels unpacked into a new venv, the controller's bytecode installed beside each
module and accepted by the interpreter, console scripts written, an upgrade removing the files of the old version.
The wheels are small ones made here (no pip, no package index)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "roles" / "agent" / "files"
sys.path.insert(0, str(FILES))

import build_wheelhouse as bw  # noqa: E402

TAG = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"


def wheel(folder: Path, name: str, version: str, files: dict[str, str], scripts: dict[str, str] | None = None) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        for member, text in files.items():
            z.writestr(member, text)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        if scripts:
            lines = "".join(f"{k} = {v}\n" for k, v in scripts.items())
            z.writestr(f"{info}/entry_points.txt", f"[console_scripts]\n{lines}")
        z.writestr(f"{info}/RECORD", "")
    return path


def installer(tmp: Path, version: str, modules: dict[str, str]) -> Path:
    """shoal (with a shoald console script) and a dependency whose module sits in its .data/purelib."""
    folder = tmp / f"wheels-{version}"
    folder.mkdir()
    shoal = wheel(folder, "shoal", version, modules, {"shoald": "shoal_fake.cli:main"})
    dep = wheel(folder, "dep", "1.0", {"dep-1.0.data/purelib/dep_mod.py": "VALUE = 42\n"})
    archive, out = tmp / f"archive-{version}.tar", tmp / f"install-{version}.sh"
    wheels = {shoal.name: shoal, dep.name: dep}
    bw.write_archive(sys.executable, wheels, tmp / f"build-{version}", archive, entry="shoal_fake.cli")
    bw.write_installer(archive, out)
    return out


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    # as on a host: no PYTHONPATH (the test run's own points at a checkout whose shoal.egg-info would
    # answer for the installed shoal's version) and bytecode written
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, **kwargs)


def install(script: Path, prefix: Path, build: int) -> subprocess.CompletedProcess:
    return run(["sh", str(script), sys.executable, str(prefix), str(prefix / "venv" / f".shoal-wheelhouse-{build}")])


def site_packages(prefix: Path) -> Path:
    (site,) = (prefix / "venv" / "lib").glob("python3.*/site-packages")
    return site


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    (tmp_path / "build-1.0").mkdir()
    return installer(
        tmp_path,
        "1.0",
        {
            "shoal_fake/__init__.py": "",
            "shoal_fake/cli.py": "import dep_mod\nfrom shoal_fake import old\n\ndef main():\n"
            "    print('fake shoald', dep_mod.VALUE)\n    return 0\n",
            "shoal_fake/old.py": "GONE = True\n",
            "shoal_fake/unused.py": "NOT_IMPORTED = True\n",
        },
    )


def test_the_installer_installs_its_wheels_with_their_bytecode(tmp_path: Path, v1: Path) -> None:
    prefix = tmp_path / "opt"
    proc = install(v1, prefix, 1)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "shoald 1.0"
    assert (prefix / "venv" / ".shoal-wheelhouse-1").exists()
    assert run([str(prefix / "venv" / "bin" / "shoald")]).stdout.strip() == "fake shoald 42"
    site = site_packages(prefix)
    pyc = site / "shoal_fake" / "__pycache__" / f"cli.{TAG}.pyc"
    assert (site / "__pycache__" / f"dep_mod.{TAG}.pyc").exists()  # from the dependency's .data/purelib
    # only what the entry point imports: the rest compiles on first use, as without the controller's bytecode
    assert (site / "shoal_fake" / "unused.py").exists()
    assert not (site / "shoal_fake" / "__pycache__" / f"unused.{TAG}.pyc").exists()
    before = pyc.read_bytes()
    assert int.from_bytes(before[4:8], "little") == 0b11  # checked-hash: valid whatever the files' times
    # the interpreter takes it as it is: a .pyc it refused would be written again (timestamp-based)
    assert run([str(prefix / "venv" / "bin" / "python"), "-c", "import shoal_fake.cli"]).returncode == 0
    assert pyc.read_bytes() == before
    (record,) = site.glob("shoal-1.0.dist-info/RECORD")
    assert f"shoal_fake/__pycache__/cli.{TAG}.pyc" in record.read_text()


def test_an_upgrade_removes_the_old_versions_modules_and_bytecode(tmp_path: Path, v1: Path) -> None:
    prefix = tmp_path / "opt"
    assert install(v1, prefix, 1).returncode == 0
    site = site_packages(prefix)
    assert (site / "shoal_fake" / "__pycache__" / f"old.{TAG}.pyc").exists()
    (tmp_path / "build-2.0").mkdir()
    v2 = installer(
        tmp_path,
        "2.0",
        {"shoal_fake/__init__.py": "", "shoal_fake/cli.py": "def main():\n    print('two')\n    return 0\n"},
    )
    proc = install(v2, prefix, 2)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "shoald 2.0"
    assert not (site / "shoal_fake" / "old.py").exists()
    assert not (site / "shoal_fake" / "__pycache__" / f"old.{TAG}.pyc").exists()
    assert not (site / "shoal-1.0.dist-info").exists()
    assert not (prefix / "venv" / ".shoal-wheelhouse-1").exists() and (prefix / "venv" / ".shoal-wheelhouse-2").exists()
    assert run([str(prefix / "venv" / "bin" / "shoald")]).stdout.strip() == "two"


def test_the_script_without_its_archive_says_so(tmp_path: Path) -> None:
    proc = run(["sh", str(FILES / "install_wheelhouse.sh"), sys.executable, str(tmp_path / "opt"), str(tmp_path / "m")])
    assert proc.returncode != 0
    assert "carries no wheel" in proc.stderr or "does not look like a tar archive" in proc.stderr
    assert not (tmp_path / "m").exists() and not (tmp_path / "opt" / "venv").exists()


def test_the_archive_is_the_same_for_the_same_wheels(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    whl = wheel(folder, "shoal", "1.0", {"shoal_fake/__init__.py": "X = 1\n"})
    digests = []
    for n in (1, 2):
        (tmp_path / f"b{n}").mkdir()
        bw.write_archive(sys.executable, {whl.name: whl}, tmp_path / f"b{n}", tmp_path / f"a{n}.tar")
        digests.append((tmp_path / f"a{n}.tar").read_bytes())
    assert digests[0] == digests[1]
    with tarfile.open(tmp_path / "a1.tar") as tar:
        assert tar.getnames() == [whl.name, whl.name + bw.PYC_SUFFIX]
