# The VM testbed (tests/testbed/vm): Debian 12 VMs under QEMU in software emulation, for the Makefile:
#   include mk/vm.mk
# It has its own namespaces (shoalvm-*) and lock: the namespace testbed can run meanwhile.
# The image is built once per recipe under /var/cache/shoal-testbed/ (about 5 minutes; notes/vm.md).
VM_DEB_PACKAGES := qemu-system-x86 qemu-utils mmdebstrap e2fsprogs netcat-openbsd openssh-client
VM_LOCK := /run/lock/shoal-testbed-vm.lock
VM_STAMP := $(STATE)/setup-vm.stamp
VM_HOSTS ?= 3
.PHONY: setup-vm vm-image vm-up vm-down molecule-vm molecule-vm-full

$(VM_STAMP): mk/vm.mk
	@mkdir -p $(STATE)
	@missing=""; for p in $(VM_DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "setup-vm: installing Debian packages:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
	fi
	@touch $(VM_STAMP)

setup-vm: setup $(VM_STAMP)

# build (or find) the cached image alone
vm-image: setup-vm
	cd tests && ../$(VPY) -m testbed.vm.image

vm-up: setup-vm
	flock $(VM_LOCK) $(VPY) -m testbed up --backend vm --hosts $(VM_HOSTS)

vm-down: setup
	flock $(VM_LOCK) $(VPY) -m testbed down --backend vm

# extensions/molecule/vm: site.yml on three bare VMs, idempotence, verify (nodes, leader, service through port 80 of
# every VM, the IPVS backend, an agent restart by systemd keeps its tasks, both workers promoted).
# Each step runs on its own so that its time is printed; the VMs are destroyed whatever happens.
# molecule-vm-full adds the side_effect step (side_effect.yml: a task's cgroup v2 limits and crun, drain/activate
# twice, a real reboot of a VM): too slow under software emulation for every CI run.
MOLECULE_VM_STEPS ?= syntax create converge idempotence verify
molecule-vm-full:
	$(MAKE) --no-print-directory molecule-vm MOLECULE_VM_STEPS="$(MOLECULE_VM_STEPS) side_effect"

molecule-vm: setup-vm
	@echo "molecule-vm: waiting for the VM testbed lock ($(VM_LOCK))"
	flock $(VM_LOCK) env PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ANSIBLE_HOME=$(CURDIR)/$(STATE)/molecule-vm \
		ANSIBLE_NOCOLOR=1 PY_COLORS=0 bash -c 'started=$$(date +%s); rc=0; times=""; \
		molecule destroy -s vm >/dev/null 2>&1 || true; \
		for step in $(MOLECULE_VM_STEPS); do \
			t0=$$(date +%s); molecule $$step -s vm || rc=$$?; t=$$(( $$(date +%s) - t0 )); \
			times="$$times $$step=$${t}s"; echo "molecule-vm: $$step took $$t s (exit $$rc)"; \
			[ $$rc -eq 0 ] || break; \
		done; \
		t0=$$(date +%s); molecule destroy -s vm >/dev/null || rc=$$((rc ? rc : 1)); times="$$times destroy=$$(( $$(date +%s) - t0 ))s"; \
		echo "molecule-vm: exited $$rc after $$(( $$(date +%s) - started )) s:$$times"; exit $$rc'
