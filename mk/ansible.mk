# Quality gates of the shoal.swarm collection (plugins/, roles/, playbooks/), for the Makefile:
#   include mk/ansible.mk        and add `collection-lint` to what `lint` runs.
# tests/sanity.sh builds a temporary ansible_collections/shoal/swarm tree and runs, from it,
# `ansible-test sanity --python 3.11 --local` and `ansible-lint --profile production roles playbooks`.
# ansible-test's requirement venvs are kept in build/ansible-test (the first run fetches pinned packages).
.PHONY: ansible-sanity ansible-lint collection-lint

ansible-sanity: setup
	VENV_BIN=$(CURDIR)/$(VENV)/bin tests/sanity.sh sanity

ansible-lint: setup
	VENV_BIN=$(CURDIR)/$(VENV)/bin tests/sanity.sh lint

collection-lint: ansible-sanity ansible-lint

# ---- molecule and the demo on the testbed (one per machine: both take its lock, as the tests do)
TESTBED_LOCK := /run/lock/shoal-testbed.lock
# The namespace-testbed scenarios (the `vm` scenario has its own lock and target: make molecule-vm).
# `make molecule MOLECULE_SCENARIOS=node_ops` runs one of them.
MOLECULE_SCENARIOS ?= default node_ops
.PHONY: molecule demo-cluster demo-cluster-locked

# extensions/molecule: default (site.yml from bare hosts, idempotence, verify: nodes, leader, nodejs converged and
# answering through the routing mesh on every node) and node_ops (drain -> activate -> promote -> demote, each twice).
molecule: setup
	@echo "molecule: waiting for the testbed lock ($(TESTBED_LOCK))"
	flock $(TESTBED_LOCK) env PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ANSIBLE_HOME=$(CURDIR)/$(STATE)/molecule \
		ANSIBLE_NOCOLOR=1 PY_COLORS=0 sh -c 'started=$$(date +%s); rc=0; \
		for scenario in $(MOLECULE_SCENARIOS); do molecule test -s $$scenario || { rc=$$?; break; }; done; \
		echo "molecule: $(MOLECULE_SCENARIOS) exited $$rc after $$(( $$(date +%s) - started )) s"; exit $$rc'

# The README's main job: the testbed, site.yml on it, then what the swarm runs; the cluster stays up
# (`make demo-down` removes it). The lock is held while the cluster is built, not while it is left running.
demo-cluster: setup
	@flock $(TESTBED_LOCK) $(MAKE) --no-print-directory demo-cluster-locked

demo-cluster-locked:
	@$(VPY) -m testbed up
	ANSIBLE_CONFIG=$$($(VPY) -m testbed ansible-cfg) $(VENV)/bin/ansible-playbook \
		-i $$($(VPY) -m testbed inventory) playbooks/site.yml
	@echo; echo "== shoal node ls (on swarm00)"
	@$(VPY) -m testbed exec swarm00 -- shoal node ls
	@echo; echo "== shoal stack ps seed"
	@$(VPY) -m testbed exec swarm00 -- shoal stack ps seed
	@echo; echo "== curl through the published port 80 of every node (the routing mesh, round robin), from the controller namespace"
	@for addr in $$($(VPY) -c 'from testbed.bed import Testbed; print(*(h.address for h in Testbed().hosts()))'); do \
		for try in 1 2 3 4 5 6 7 8 9 10; do \
			answer=$$(ip netns exec shoal-ctl curl -s --max-time 3 "http://$$addr:80/" || true); \
			case "$$answer" in "Hello World!"*) break ;; esac; sleep 1; \
		done; \
		again=$$(ip netns exec shoal-ctl curl -s --max-time 3 "http://$$addr:80/" || true); \
		echo "curl http://$$addr:80/  ->  $${answer:-no answer}   (again: $${again:-no answer})"; \
	done
	@echo
	@echo "The swarm keeps running:"
	@echo "  $(VPY) -m testbed exec swarm00 -- shoal service ls     (any shoal command; also node ls, stack ps seed)"
	@echo "  $(VPY) -m testbed ssh swarm01                         (a shell on a host)"
	@echo "  ip netns exec shoal-ctl curl http://10.213.0.10/        (the routing mesh, from the controller namespace)"
	@echo "  export ANSIBLE_CONFIG=$$($(VPY) -m testbed ansible-cfg); $(VENV)/bin/ansible-playbook playbooks/drain.yml -e node=swarm01"
	@echo "Tear it down with: make demo-down"
