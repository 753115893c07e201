"""The node-local image store without a registry: built-ins, import, names, removal, archives, GC."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from shoal.model.errors import SpecError
from shoal.runtime.base import NoSuchImage
from shoal.runtime.images import HOST_BINDS_LABEL, ImageFormatError, ImageStore
from shoal.runtime.images.store import archive_entries


def test_builtins_are_real_oci_images(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    hello = store.get("shoal/hello")
    assert hello.builtin and hello.rootfs is not None
    assert (hello.rootfs / "bin" / "busybox").is_file()
    assert os.access(hello.rootfs / "www" / "cgi-bin" / "index.cgi", os.X_OK)
    assert hello.config["Entrypoint"] == ["/bin/hello"] and "8080/tcp" in hello.config["ExposedPorts"]
    host = store.get("shoal/host:latest")
    assert host.host_binds == ["/usr", "/bin", "/sbin", "/lib", "/lib64"]
    assert {"bin", "lib", "sbin", "usr"} <= {p.name for p in host.rootfs.iterdir()}
    # made once: the same node software makes the same image ID, the layout holds the manifests
    assert ImageStore(tmp_path / "images").get("shoal/hello").id == hello.id
    index = json.loads((tmp_path / "images" / "oci" / "index.json").read_text())
    names = {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]}
    assert names == {"shoal/hello:latest", "shoal/host:latest"}
    with pytest.raises(SpecError, match="built-in"):
        store.remove("shoal/host")


def test_no_such_image_message(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with pytest.raises(NoSuchImage) as err:
        store.get("nosuch")
    assert err.value.message == "No such image: nosuch"
    with pytest.raises(NoSuchImage, match="No such image: shoal/host:v2"):
        store.get("shoal/host:v2")


def _rootfs(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True, exist_ok=True)
    (src / "bin" / "app").write_text("#!/bin/sh\necho hi\n")
    (src / "bin" / "app").chmod(0o755)
    return src


def test_import_dir_with_changes_shares_blobs_and_retag(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    src = _rootfs(tmp_path)
    img = store.import_dir(src, "myapp:1", ['ENTRYPOINT ["/bin/app"]', "ENV MODE=prod", "EXPOSE 8080"])
    assert img.repo_tags == ["myapp:1"] and img.rootfs is not None
    assert (img.rootfs / "bin" / "app").read_text().startswith("#!/bin/sh")
    assert (img.rootfs / "bin" / "app").stat().st_mode & 0o777 == 0o755
    for sub in ("proc", "dev", "sys", "tmp", "etc/hostname", "etc/hosts", "etc/resolv.conf"):
        assert (img.rootfs / sub).exists(), sub
    assert img.config["Entrypoint"] == ["/bin/app"] and img.config["Env"] == ["MODE=prod"]
    assert store.get("myapp:1") == img and store.get(img.short_id) == img
    blobs = set(os.listdir(tmp_path / "images" / "oci" / "blobs" / "sha256"))
    other = store.import_dir(src, "myapp:2", ["CMD x"])
    new_blobs = set(os.listdir(tmp_path / "images" / "oci" / "blobs" / "sha256")) - blobs
    assert other.id != img.id and len(new_blobs) == 2  # a new config and manifest; the layer is shared
    # retagging leaves the old image untagged (dangling) until a prune
    again = store.import_dir(src, "myapp:1", ["CMD y"])
    assert store.get("myapp:1").id == again.id and store.get(img.id).repo_tags == []
    deleted, _ = store.prune(dangling_only=True)
    assert {"Deleted": img.id} in deleted and not img.rootfs.exists()


def test_import_tar_config_only_and_remove(tmp_path: Path) -> None:
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
    assert conf.labels[HOST_BINDS_LABEL] and conf.host_binds[0] == "/usr"
    assert store.remove("tarred") == [{"Untagged": "tarred:latest"}, {"Deleted": img.id}]
    with pytest.raises(NoSuchImage):
        store.get("tarred")
    assert not Path(img.rootfs).exists()
    # removing the image took its now unreferenced blobs along
    kept = set(os.listdir(tmp_path / "images" / "oci" / "blobs" / "sha256"))
    assert all(not (tmp_path / "images" / "oci" / "blobs" / "sha256" / d).exists() for d in [img.id[7:]])
    assert kept  # the others' blobs stay


def test_import_refuses_bad_sources(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    with pytest.raises(SpecError, match="built-in"):
        store.import_dir(None, "shoal/hello", [])
    with pytest.raises(SpecError, match="no such file"):
        store.import_dir(tmp_path / "missing", "x", [])
    (tmp_path / "junk").write_text("not a tar")
    with pytest.raises(SpecError, match="not a directory or a tar"):
        store.import_dir(tmp_path / "junk", "x", [])


def test_remove_by_id_with_two_names_needs_force(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    img = store.import_dir(_rootfs(tmp_path), "a:1", [])
    store._name(img.id, ["b:1"], None)
    with pytest.raises(SpecError, match="must be forced") as err:
        store.remove(img.short_id)
    assert err.value.status == 409
    with pytest.raises(SpecError, match="in use") as err:
        store.remove("a:1", in_use=lambda i: i == img.id)
    assert store.remove("a:1") == [{"Untagged": "a:1"}]
    assert store.get("b:1").id == img.id


def _oci_archive(tmp_path: Path, store: ImageStore) -> Path:
    img = store.import_dir(_rootfs(tmp_path), "src:1", ['ENTRYPOINT ["/bin/app"]'])
    out = tmp_path / "app.oci.tar"
    subprocess.run(
        ["skopeo", f"--policy={store._policy}", "copy", f"oci:{store.oci}:src:1", f"oci-archive:{out}:app:2"],
        check=True,
        capture_output=True,
    )
    assert img.id
    return out


def test_load_oci_and_docker_archives(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    oci_tar = _oci_archive(tmp_path, store)
    assert archive_entries(oci_tar)[0] == "oci-archive"
    docker_tar = tmp_path / "app.docker.tar"
    subprocess.run(
        ["skopeo", f"--policy={store._policy}", "copy", f"oci-archive:{oci_tar}", f"docker-archive:{docker_tar}:web:3"],
        check=True,
        capture_output=True,
    )
    other = ImageStore(tmp_path / "other")
    lines: list[dict] = []
    assert other.load(docker_tar, lines.append) == ["web:3"]
    assert lines == [{"stream": "Loaded image: web:3\n"}]
    loaded = other.load(oci_tar)
    assert len(loaded) == 1
    assert other.get("web:3").config["Entrypoint"] == ["/bin/app"]


def test_load_refuses_junk_without_leftovers(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    not_image = tmp_path / "files.tar"
    with tarfile.open(not_image, "w") as tar:
        tar.add(_rootfs(tmp_path), arcname="src")
    with pytest.raises(ImageFormatError, match=r"no manifest\.json or oci-layout"):
        store.load(not_image)
    oci_tar = _oci_archive(tmp_path, ImageStore(tmp_path / "maker"))
    corrupt = tmp_path / "corrupt.tar"
    raw = bytearray(oci_tar.read_bytes())
    corrupt.write_bytes(bytes(raw[: len(raw) // 2]))  # truncated mid-layer
    with pytest.raises(ImageFormatError, match="invalid image archive"):
        store.load(corrupt)
    (tmp_path / "text").write_text("hello")
    with pytest.raises(ImageFormatError, match="invalid image archive"):
        store.load(tmp_path / "text")
    assert not (tmp_path / "images" / "tmp").exists() or os.listdir(tmp_path / "images" / "tmp") == []
    assert [i.repo_tags for i in store.list() if not i.builtin] == []


def test_garbage_collection_removes_what_a_killed_pull_left(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    img = store.import_dir(_rootfs(tmp_path), "keep:1", [])
    sha = tmp_path / "images" / "oci" / "blobs" / "sha256"
    (sha / ("0" * 64)).write_bytes(b"x" * 10)  # a blob no image references
    (sha / "oci-put-blob123").write_bytes(b"partial")  # a half-written blob
    stale = tmp_path / "images" / "tmp" / "pull-dead"
    stale.mkdir()
    (stale / ".lock").write_text("")  # its process is gone: nobody holds the lock
    half = tmp_path / "images" / "images" / ("1" * 64)
    (half / "rootfs").mkdir(parents=True)  # unpacked, never recorded
    store.recover()
    assert not (sha / ("0" * 64)).exists() and not (sha / "oci-put-blob123").exists()
    assert not stale.exists() and not half.exists()
    assert store.get("keep:1").id == img.id and (img.rootfs / "bin" / "app").exists()


def test_pulls_are_counted_by_result_and_timed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """shoal_image_pulls_total{result} and shoal_image_pull_duration_seconds follow every pull
    (the registry itself is exercised by tests/integration/test_images.py)."""
    from shoal import metrics
    from shoal.runtime.images.registry import RegistryError

    def count(result: str) -> float:
        return metrics.REGISTRY.get_sample_value("shoal_image_pulls_total", {"result": result}) or 0.0

    def timed() -> float:
        return metrics.REGISTRY.get_sample_value("shoal_image_pull_duration_seconds_count") or 0.0

    store = ImageStore(tmp_path / "images")
    hello = store.get("shoal/hello")
    ok_before, err_before, timed_before = count("success"), count("error"), timed()
    monkeypatch.setattr(store, "_pull", lambda ref, auth, progress: hello)
    assert store.pull("10.213.0.1:5000/testbed/hello:1") is hello

    def refuse(ref: object, auth: object, progress: object) -> None:
        raise RegistryError("No such image: x (manifest unknown)", "manifest unknown", 404)

    monkeypatch.setattr(store, "_pull", refuse)
    with pytest.raises(RegistryError):
        store.ensure("10.213.0.1:5000/testbed/nosuch:1")
    assert (count("success"), count("error"), timed()) == (ok_before + 1, err_before + 1, timed_before + 1)
