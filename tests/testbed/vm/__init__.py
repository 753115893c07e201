"""testbed.vm: the testbed as real Debian 12 VMs under QEMU (python -m testbed up --backend vm)."""
