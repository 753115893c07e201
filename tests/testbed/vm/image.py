"""The Debian 12 image the VMs boot: built once from Debian's packages, cached by the recipe's hash.

mmdebstrap (minbase) with every package shoal's hosts need in one apt run (parallel downloads, one
dpkg pass: debootstrap took ~500 of the 589 s of a build here), configured in a chroot, then turned
into a raw ext4 file without any loop mount (`mkfs.ext4 -d`). The kernel and initrd are copied out
next to it: QEMU boots them directly (no bootloader). Notes: ../shared/notes/vm.md.

Cache layout (one folder per recipe hash; a build goes to a temporary folder renamed at the end):
    /var/cache/shoal-testbed/vm-<hash>/base.img   read-only raw ext4, the VMs' qcow2 overlays' backing file
                                      /vmlinuz, /initrd.img, /id_ed25519(.pub)  root's ssh key baked in
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(os.environ.get("SHOAL_TESTBED_CACHE", "/var/cache/shoal-testbed"))
SUITE = "bookworm"
IMAGE_SIZE = "4G"
FALLBACK_MIRROR = "http://deb.debian.org/debian"

# Every Debian package a VM needs: boot and login, Ansible's target, shoal's data plane (nftables, IPVS,
# VXLAN are kernel modules of linux-image-amd64), and what the agent role expects to find installed
# (the VMs have no route to any package source: roles/agent checks them, it installs nothing).
BASE_PACKAGES = (
    # boot, login, Ansible (what the trial run of notes/vm.md used)
    "systemd-sysv",
    "udev",
    "kmod",
    "linux-image-amd64",
    "zstd",
    "openssh-server",
    "python3",
    "python3-venv",
    "ca-certificates",
    # networking and diagnostics
    "iproute2",
    "nftables",
    "ipvsadm",
    "iputils-ping",
    "procps",
    "curl",
    "netcat-openbsd",
    "iperf3",
)
# (kept apart from BASE_PACKAGES for the reader: the agent role's packages; mmdebstrap installs both at once)
RUNTIME_PACKAGES = (
    # the container runtime the agent role installs on real hosts
    "runc",
    "crun",
    "conmon",
    "skopeo",
    "umoci",
    "catatonit",
    "busybox-static",
    # the Compose Specification's schema (compose/config/compose_spec.json) that stack deploys validate with
    "docker-compose",
)
PACKAGES = BASE_PACKAGES + RUNTIME_PACKAGES

# initramfs modules to find and mount the root disk under QEMU (MODULES=most makes a 36 MB initrd,
# slow to unpack in software emulation)
INITRD_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ext4")

# Units that cost tens of seconds under TCG or do nothing useful in a throwaway VM (notes/vm.md #7).
MASKED_UNITS = (
    "systemd-networkd-wait-online.service",
    "e2scrub_reap.service",
    "getty-static.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "fstrim.timer",
    "e2scrub_all.timer",
    "man-db.timer",
    "dpkg-db-backup.timer",
    # first-boot work the image build already did (dpkg triggers ran ldconfig, hwdb and the catalog): each
    # fresh overlay would redo it (ConditionNeedsUpdate=/etc), hwdb alone for many seconds under emulation
    "ldconfig.service",
    "systemd-hwdb-update.service",
    "systemd-journal-catalog-update.service",
    "systemd-update-done.service",
    # nothing in a test VM reads them
    "systemd-pstore.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
)

# Written into the new root before any package is installed (mmdebstrap --setup-hook, $1 = the root): the
# kernel's postinst makes a small initramfs at once (MODULES=most makes a 36 MB initrd, slow to make and to
# unpack under emulation) and nothing has to make it again. conf.d and modules.d are read by mkinitramfs and
# belong to no package (no conffile question from dpkg).
INITRAMFS = r"""set -eu
mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"
echo MODULES=list > "$1/etc/initramfs-tools/conf.d/shoal-vm.conf"
printf '%s\n' INITRD_MODULES > "$1/usr/share/initramfs-tools/modules.d/shoal-vm"
"""
# dpkg leaves out what nobody reads in a throwaway VM (less to unpack, copy into the image and boot from)
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")

# Runs in the chroot after the packages are in. $1 = root's authorized public key.
CONFIGURE = r"""set -eu
echo '/dev/vda / ext4 rw,relatime 0 1' > /etc/fstab
# the hostname comes from systemd.hostname= and the machine id from systemd.machine_id= (kernel cmdline)
echo localhost > /etc/hostname
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
printf '127.0.0.1 localhost\n' > /etc/hosts
# no DNS: the VMs reach nothing outside their bridge
: > /etc/resolv.conf
# distinct ssh host keys: made at each VM's first boot, before sshd starts; ed25519 only (an RSA key
# takes tens of seconds to make on an emulated CPU)
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/systemd/system/ssh.service.d /etc/ssh/sshd_config.d /root/.ssh
cat > /usr/local/sbin/shoal-ssh-hostkey <<'EOF'
#!/bin/sh
key=/etc/ssh/ssh_host_ed25519_key
test -s "$key" || exec ssh-keygen -q -t ed25519 -N "" -f "$key"
EOF
chmod 755 /usr/local/sbin/shoal-ssh-hostkey
cat > /etc/systemd/system/ssh.service.d/hostkeys.conf <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/local/sbin/shoal-ssh-hostkey
ExecStartPre=/usr/sbin/sshd -t
EOF
cat > /etc/ssh/sshd_config.d/shoal.conf <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
printf '%s\n' "$1" > /root/.ssh/authorized_keys
chmod 700 /root/.ssh
chmod 600 /root/.ssh/authorized_keys
# eth0 from the ip= kernel argument (systemd-network-generator writes it for networkd); no gateway
systemctl enable systemd-networkd.service systemd-network-generator.service
systemctl mask MASKED_UNITS
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' > /etc/systemd/journald.conf.d/shoal.conf
# wireless regulatory code udev would load for nothing (seconds of boot under emulation)
printf 'blacklist cfg80211\ninstall cfg80211 /bin/false\n' > /etc/modprobe.d/shoal-vm.conf
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log
"""


@dataclass(frozen=True)
class Image:
    dir: Path

    @property
    def base(self) -> Path:
        return self.dir / "base.img"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    def complete(self) -> bool:
        return all(p.exists() for p in (self.base, self.kernel, self.initrd, self.key))


class ImageError(RuntimeError):
    pass


def initramfs_script() -> str:
    return INITRAMFS.replace("INITRD_MODULES", " ".join(INITRD_MODULES))


def configure_script() -> str:
    return CONFIGURE.replace("MASKED_UNITS", " ".join(MASKED_UNITS)).replace("INITRD_MODULES", " ".join(INITRD_MODULES))


def recipe_hash() -> str:
    """What the image is made of; a change to any of it builds a new image."""
    parts = [SUITE, IMAGE_SIZE, " ".join(mmdebstrap_argv(Path("rootfs"), "MIRROR")), initramfs_script()]
    recipe = "\n".join([*parts, configure_script()])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def mmdebstrap_argv(rootfs: Path, mirror: str) -> list[str]:
    """One apt run for every package (its resolver, parallel downloads), the initramfs settings first."""
    return [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        "--verbose",
        "--include=" + ",".join(BASE_PACKAGES + RUNTIME_PACKAGES),
        "--setup-hook=" + initramfs_script(),
        *(f"--dpkgopt=path-exclude={path}" for path in DPKG_EXCLUDES),
        # no fsync per unpacked file: the tree is copied into the image by mkfs.ext4 anyway
        "--dpkgopt=force-unsafe-io",
        '--aptopt=Acquire::Retries "3"',
        SUITE,
        str(rootfs),
        mirror,
    ]


def image_for(cache_dir: Path = CACHE_DIR) -> Image:
    return Image(cache_dir / f"vm-{recipe_hash()}")


def debian_mirror(sources: list[Path] | None = None) -> str:
    """The Debian archive apt on this machine already uses (debootstrap needs one)."""
    if sources is None:
        sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for url in re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            if url.rstrip("/").endswith("/debian"):
                return url
    return FALLBACK_MIRROR


def ensure_image(cache_dir: Path = CACHE_DIR, log=sys.stderr) -> Image:
    """The cached image for the current recipe, built first when missing (one builder at a time)."""
    image = image_for(cache_dir)
    if image.complete():
        return image
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / "vm-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image.complete():  # built by whoever held the lock
            return image
        _build(image, log)
    return image


def prune_images(keep: Image, cache_dir: Path = CACHE_DIR) -> list[Path]:
    """Remove the images of other recipes (the one testbed per machine is down when this runs)."""
    removed = []
    for path in sorted(cache_dir.glob("vm-*")):
        if path.name.startswith(keep.dir.name) or path.name == "vm-build.lock":
            continue
        if path.is_dir():
            remove_tree(path)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _run(argv: list[str], step: str, logfile: Path) -> None:
    """Run one build step; each line of its output goes to the log with the seconds since the step began
    (where a build's minutes go: download, unpack, configure, triggers)."""
    started = time.monotonic()
    with open(logfile, "ab") as out:
        out.write(f"\n== {step}: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(f"[{time.monotonic() - started:6.1f}] ".encode() + line)
            out.flush()
        rc = proc.wait()
        out.write(f"== {step}: exit {rc} after {time.monotonic() - started:.1f} s\n".encode())
    if rc != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-25:]
        raise ImageError(f"image build: {step} failed (exit {rc}); the end of {logfile}:\n" + "\n".join(tail))


def _build(image: Image, log) -> None:
    for tool in ("mmdebstrap", "mkfs.ext4", "ssh-keygen"):
        if not shutil.which(tool):
            raise ImageError(f"image build needs {tool} (make setup-vm installs it)")
    work = image.dir.with_name(image.dir.name + ".build")
    remove_tree(work)
    work.mkdir(parents=True)
    rootfs = work / "rootfs"
    logfile = work.with_name(image.dir.name + ".build.log")
    logfile.write_text("")
    started = time.monotonic()

    def say(msg: str) -> None:
        print(f"vm image {image.dir.name}: {msg} ({time.monotonic() - started:.0f} s)", file=log, flush=True)

    try:
        mirror = debian_mirror()
        say(f"mmdebstrap {SUITE} from {mirror} ({len(PACKAGES)} packages and their dependencies), log {logfile}")
        _run(mmdebstrap_argv(rootfs, mirror), "mmdebstrap", logfile)
        key = work / "id_ed25519"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "shoal-vm-testbed", "-f", str(key)], "key", logfile)
        pub = key.with_suffix(".pub").read_text().strip()
        say("configuring")
        _run(["chroot", str(rootfs), "/bin/sh", "-c", configure_script(), "configure", pub], "configure", logfile)
        kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
        initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            raise ImageError(f"image build: no kernel/initrd in {rootfs}/boot")
        shutil.copyfile(kernels[-1], work / "vmlinuz")
        shutil.copyfile(initrds[-1], work / "initrd.img")
        say("making the ext4 image")
        base = work / "base.img"
        _run(["mkfs.ext4", "-q", "-F", "-L", "vmroot", "-d", str(rootfs), str(base), IMAGE_SIZE], "mkfs", logfile)
        base.chmod(0o444)
        remove_tree(rootfs)
        remove_tree(image.dir)
        work.rename(image.dir)
        say(f"done: {image.dir}")
    except BaseException:
        remove_tree(work)
        raise


def remove_tree(path: Path) -> None:
    """rm -rf that first unmounts whatever debootstrap or a chroot left mounted below `path`
    (a bind-mounted /dev must never be emptied) and refuses to go on if something stays mounted."""
    if not path.exists():
        return
    top = str(path.resolve())

    def mounted() -> list[str]:
        points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        return sorted((p for p in points if p == top or p.startswith(top + "/")), key=len, reverse=True)

    for point in mounted():
        subprocess.call(["umount", "-l", point], stderr=subprocess.DEVNULL)
    left = mounted()
    if left:
        raise ImageError(f"not removing {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":  # build (or find) the image alone: python -m testbed.vm.image
    print(ensure_image().dir)
