# shoal — every target works from a fresh clone, as root, on Debian 12.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STATE := .state
DEB_PACKAGES := iproute2 nftables openssh-server openssh-client procps iputils-ping curl \
	netcat-openbsd util-linux python3 python3-venv haproxy dnsutils iperf3 wrk chromium chromium-driver \
	conmon runc crun catatonit
# images: skopeo pulls/loads, umoci unpacks, busybox-static makes shoal/hello and the test images,
# docker-registry is the testbed's registry, nodejs the seed app's image
DEB_PACKAGES += skopeo umoci busybox-static docker-registry nodejs
# stack deploy validates compose files against the Compose Specification's JSON schema, which Debian ships
# in docker-compose (compose/config/compose_spec.json); it only Recommends docker.io, so no daemon comes
DEB_PACKAGES += docker-compose
STAMP := $(STATE)/setup.stamp
SETUP_INPUTS := agent/pyproject.toml requirements-dev.txt Makefile
# The docker CLI a fresh Debian 12 gets (docker.io 20.10, API 1.41), for tests/compat only. Unpacked
# from the .deb into .state/ and never installed: no dockerd, containerd or service is set up or started.
DOCKER_CLI := $(STATE)/docker-cli/usr/bin/docker

.PHONY: setup test unit integration compat demo demo-down bench lint clean

include mk/ansible.mk
include mk/chaos.mk
include mk/scale.mk
include mk/vm.mk

$(STAMP): $(SETUP_INPUTS)
	@mkdir -p $(STATE)
	@missing=""; for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "setup: installing Debian packages:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
	fi
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q -e ./agent -r requirements-dev.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
	@# `python -m testbed` works from the repository root: tests/ is on the venv's path
	@echo "$(CURDIR)/tests" > "$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/shoal-tests.pth"
	@touch $(STAMP)

$(DOCKER_CLI):
	@mkdir -p $(STATE)/docker-cli/deb
	@cd $(STATE)/docker-cli/deb && rm -f docker.io_*.deb && { apt-get download -q docker.io >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null && apt-get download -q docker.io >/dev/null 2>&1; }; }
	dpkg-deb --fsys-tarfile $(STATE)/docker-cli/deb/docker.io_*.deb | tar -x -C $(STATE)/docker-cli ./usr/bin/docker
	@rm -rf $(STATE)/docker-cli/deb
	@$(DOCKER_CLI) --version

setup: $(STAMP) $(DOCKER_CLI)

lint: setup collection-lint
	$(VENV)/bin/ruff check $(wildcard agent tests bench plugins roles)
	$(VENV)/bin/ruff format --check $(wildcard agent tests bench plugins roles)
	$(VENV)/bin/lint-imports .importlinter

unit: setup
	$(VENV)/bin/pytest -q tests/unit

integration: setup
	$(VENV)/bin/pytest -q tests/integration

compat: setup
	$(VENV)/bin/pytest -q tests/compat

test: setup lint
	$(VENV)/bin/pytest -q tests/unit tests/integration
	$(VENV)/bin/pytest -q tests/compat

# the README's main job: testbed up, site.yml, node ls / service ps / curl through every node (mk/ansible.mk)
demo: demo-cluster

demo-down: setup
	flock /run/lock/shoal-testbed.lock $(VPY) -m testbed down

bench: setup
	@for b in bench/[!_]*.py; do [ $$b = bench/scale.py ] && continue; echo "== $$b"; $(VPY) $$b || exit 1; done  # scale: make bench-scale

clean: demo-down
	rm -rf $(VENV) $(STATE)
