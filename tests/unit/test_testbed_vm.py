"""Pure parts of the VM testbed: names, QEMU command line, image recipe, refusal before starting."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from testbed import bed as ns_bed
from testbed.cli import build_parser, parse_clock_offsets
from testbed.inventory import render_inventory
from testbed.vm import image
from testbed.vm.bed import SLOW_GUEST_VARS, check_host
from testbed.vm.layout import FABRIC_NS, PREFIX, kernel_cmdline, proxy_command, qemu_argv, vm_layout

REPO = Path(__file__).resolve().parents[2]
MEMINFO = "MemTotal:       24000000 kB\nMemFree:        100 kB\nMemAvailable:   {} kB\n"


def test_vm_names_stay_clear_of_the_namespace_testbed() -> None:
    # the namespace testbed's down removes every shoal-* namespace and the processes in it
    assert not PREFIX.startswith("shoal-")
    assert FABRIC_NS.startswith(PREFIX)


def test_vm_layout_matches_the_namespace_testbed_addresses() -> None:
    vm = vm_layout(2, Path("/s"))
    assert (vm.name, vm.address, vm.tap, vm.mac) == ("swarm02", "10.213.0.12", "t-swarm02", "52:54:00:d5:00:12")
    assert len(vm.tap) <= 15
    assert vm.overlay == Path("/s/hosts/swarm02/disk.qcow2")


def test_kernel_cmdline_has_no_gateway_and_a_machine_id() -> None:
    line = kernel_cmdline(vm_layout(0), "ab" * 16)
    assert "ip=10.213.0.10:::255.255.255.0::eth0:off" in line.split()
    assert f"systemd.machine_id={'ab' * 16}" in line.split()
    assert "systemd.hostname=swarm00" in line.split()


def test_qemu_runs_in_software_with_a_small_translation_cache() -> None:
    argv = qemu_argv(vm_layout(1, Path("/s")), Path("/k"), Path("/i"), "0" * 32)
    assert argv[argv.index("-accel") + 1] == "tcg,thread=multi,tb-size=128"
    assert argv[argv.index("-netdev") + 1].startswith("tap,id=n0,ifname=t-swarm01,script=no")
    assert argv[argv.index("-rtc") + 1] == "base=utc"
    assert "-daemonize" in argv and "-enable-kvm" not in argv


def test_qemu_clock_offset_moves_the_rtc() -> None:
    argv = qemu_argv(vm_layout(0), Path("/k"), Path("/i"), "0" * 32, clock_offset_s=300)
    assert argv[argv.index("-rtc") + 1].startswith("base=20")


def test_check_host_refuses_too_little_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # QEMU present or not on this machine (`make setup-vm` installs it), the memory is what is judged
    monkeypatch.setattr("testbed.vm.bed.shutil.which", lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(ns_bed.TestbedError, match=r"3 VMs need about 3840 MB.*1000 MB available"):
        check_host(3, meminfo=MEMINFO.format(1000 * 1024))
    check_host(3, meminfo=MEMINFO.format(8000 * 1024))


def test_check_host_refuses_without_qemu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ns_bed.TestbedError, match="qemu-system-x86_64 is not installed"):
        check_host(1, meminfo=MEMINFO.format(8000 * 1024))


def test_recipe_hash_follows_the_package_list(monkeypatch: pytest.MonkeyPatch) -> None:
    before = image.recipe_hash()
    monkeypatch.setattr(image, "RUNTIME_PACKAGES", (*image.RUNTIME_PACKAGES, "extra-package"))
    assert image.recipe_hash() != before


def test_mmdebstrap_installs_every_package_after_the_initramfs_settings(tmp_path: Path) -> None:
    argv = image.mmdebstrap_argv(tmp_path / "rootfs", "http://mirror/debian")
    assert argv[:3] == ["mmdebstrap", "--mode=root", "--variant=minbase"]
    assert argv[-3:] == [image.SUITE, str(tmp_path / "rootfs"), "http://mirror/debian"]
    (include,) = [a for a in argv if a.startswith("--include=")]
    assert include.removeprefix("--include=").split(",") == list(image.PACKAGES)
    # the setup hook runs before dpkg installs the kernel: its initramfs is the small one from the start
    (hook,) = [a.removeprefix("--setup-hook=") for a in argv if a.startswith("--setup-hook=")]
    subprocess.run(["sh", "-c", hook, "hook", str(tmp_path)], check=True)
    conf = tmp_path / "etc/initramfs-tools/conf.d/shoal-vm.conf"
    assert conf.read_text() == "MODULES=list\n"
    modules = tmp_path / "usr/share/initramfs-tools/modules.d/shoal-vm"
    assert modules.read_text().split() == list(image.INITRD_MODULES)


def test_image_has_what_the_agent_role_needs() -> None:
    # the VMs have no package source: every package the agent role checks for must be in the image
    defaults = yaml.safe_load((REPO / "roles" / "agent" / "defaults" / "main.yml").read_text())
    wanted = defaults["agent_debian_packages"] + defaults["agent_image_packages"] + defaults["agent_runtime_packages"]
    assert "docker-compose" in wanted
    assert sorted(set(wanted) - set(image.PACKAGES)) == []
    assert "ipvsadm" in image.PACKAGES


def test_debian_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    legacy = tmp_path / "sources.list"
    legacy.write_text("deb [arch=amd64] http://other.example/debian bookworm main\n")
    other = tmp_path / "x.list"
    other.write_text("deb https://packages.example/apt stable main\n")
    assert image.debian_mirror([other, deb822]) == "http://mirror.example/debian"
    assert image.debian_mirror([legacy]) == "http://other.example/debian"
    assert image.debian_mirror([other]) == image.FALLBACK_MIRROR


def test_vm_inventory_uses_the_vm_controller_namespace_and_slow_guest_vars() -> None:
    hosts = [vm_layout(i) for i in range(3)]
    inv = yaml.safe_load(
        render_inventory(hosts, 1, Path("/k"), Path("/kh"), proxy=proxy_command(), extra_vars=SLOW_GUEST_VARS)
    )["all"]
    assert "ip netns exec shoalvm-ctl nc %h %p" in inv["vars"]["ansible_ssh_common_args"]
    assert inv["vars"]["agent_heartbeat_period"] == SLOW_GUEST_VARS["agent_heartbeat_period"]
    assert list(inv["children"]["workers"]["hosts"]) == ["swarm01", "swarm02"]


@pytest.mark.parametrize("argv", [["up", "--backend", "vm", "--hosts", "2"], ["--backend", "vm", "up", "--hosts", "2"]])
def test_cli_backend_before_or_after_the_verb(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.backend, args.verb, args.hosts) == ("vm", "up", 2)


def test_cli_backend_defaults_to_namespaces() -> None:
    assert build_parser().parse_args(["status"]).backend == "ns"


def test_clock_offsets_parse_and_refuse_bad_input() -> None:
    assert parse_clock_offsets(["swarm02=300", "swarm00=-60"]) == {2: 300, 0: -60}
    with pytest.raises(ns_bed.TestbedError, match="HOST=SECONDS"):
        parse_clock_offsets(["node2=300"])
    with pytest.raises(ns_bed.TestbedError, match="not a number"):
        parse_clock_offsets(["swarm02=5m"])


def test_prune_images_keeps_the_current_recipe(tmp_path: Path) -> None:
    keep = image.image_for(tmp_path)
    keep.dir.mkdir()
    (tmp_path / f"{keep.dir.name}.build.log").write_text("")
    (tmp_path / "vm-0000000000000000").mkdir()
    (tmp_path / "vm-0000000000000000.build.log").write_text("")
    (tmp_path / "vm-build.lock").write_text("")
    removed = image.prune_images(keep, tmp_path)
    assert sorted(p.name for p in removed) == ["vm-0000000000000000", "vm-0000000000000000.build.log"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [keep.dir.name, f"{keep.dir.name}.build.log", "vm-build.lock"]
    )
