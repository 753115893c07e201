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
