"""The node-local image store: built-ins, import from a directory or tar, lookups, removal."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pytest

from shoal.model.errors import SpecError
from shoal.runtime.base import NoSuchImage
from shoal.runtime.images import HELLO_APP, ImageStore, parse_reference


def test_builtins_always_present(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    host = store.get("shoal/host")
    assert host.builtin and host.rootfs is None and host.config["Entrypoint"] is None
    hello = store.get("shoal/hello:latest")
    assert hello.config["Entrypoint"] == [sys.executable, "-u", str(HELLO_APP)]
    assert "8080/tcp" in hello.config["ExposedPorts"]
    assert [i.repo_tags[0] for i in store.list()] == ["shoal/host:latest", "shoal/hello:latest"]
    assert not (tmp_path / "images").exists()  # reading never writes


def test_no_such_image_message(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with pytest.raises(NoSuchImage) as err:
        store.get("nosuch")
    assert err.value.message == "No such image: nosuch"
    with pytest.raises(NoSuchImage, match="No such image: shoal/host:v2"):
        store.get("shoal/host:v2")


def test_references() -> None:
    assert parse_reference("web") == ("web", "latest")
    assert parse_reference("shoal/hello:1.0") == ("shoal/hello", "1.0")
    assert parse_reference("localhost:5000/app") == ("localhost:5000/app", "latest")
    for bad in ("Web", "a:b:c", "x@sha256:00"):
        with pytest.raises(SpecError):
            parse_reference(bad)


def test_import_dir_with_changes_and_replace(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "app").write_text("#!/bin/sh\necho hi\n")
    (src / "bin" / "app").chmod(0o755)
    store = ImageStore(tmp_path / "images")
    img = store.import_dir(src, "myapp:1", ['ENTRYPOINT ["/bin/app"]', "ENV MODE=prod", "EXPOSE 8080"])
    assert img.repo_tags == ["myapp:1"] and img.rootfs is not None
    assert (img.rootfs / "bin" / "app").read_text().startswith("#!/bin/sh")
    assert (img.rootfs / "bin" / "app").stat().st_mode & 0o777 == 0o755
    # mount points the driver binds over exist, so the image is never written at run time
    for sub in ("proc", "dev", "sys", "tmp", "etc/hostname", "etc/hosts", "etc/resolv.conf"):
        assert (img.rootfs / sub).exists(), sub
    assert img.config["Entrypoint"] == ["/bin/app"] and img.config["Env"] == ["MODE=prod"]
    assert store.get("myapp:1") == img and store.get(img.short_id) == img
    again = store.import_dir(src, "myapp:1", ["CMD x"])
    assert again.id != img.id and not Path(img.rootfs).exists()  # the untagged image is gone
    assert [i.repo_tags for i in store.list() if not i.builtin] == [["myapp:1"]]


def test_import_tar_and_config_only_and_remove(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"hello\n"
        info = tarfile.TarInfo("etc/motd")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "rootfs.tar.gz"
    archive.write_bytes(buf.getvalue())
    store = ImageStore(tmp_path / "images")
    img = store.import_dir(archive, "tarred", [])
    assert img.rootfs is not None and (img.rootfs / "etc" / "motd").read_text() == "hello\n"
    conf = store.import_dir(None, "tool", ['ENTRYPOINT ["python3", "/opt/tool.py"]'])
    assert conf.rootfs is None  # runs on the host's filesystem
    assert store.remove("tarred") == ["tarred:latest"]
    with pytest.raises(NoSuchImage):
        store.get("tarred")
    assert not Path(img.rootfs).exists()


def test_import_refuses_builtins_and_bad_sources(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    with pytest.raises(SpecError, match="built-in"):
        store.import_dir(None, "shoal/hello", [])
    with pytest.raises(SpecError, match="no such file"):
        store.import_dir(tmp_path / "missing", "x", [])
    (tmp_path / "junk").write_text("not a tar")
    with pytest.raises(SpecError, match="not a directory or a tar"):
        store.import_dir(tmp_path / "junk", "x", [])
    with pytest.raises(SpecError, match="built-in"):
        store.remove("shoal/host")
    assert [i for i in store.list() if not i.builtin] == []
