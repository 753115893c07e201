# Reliability and security suite (tests/chaos) on the testbed: leader kills, partitions, rolling
# restarts, API fuzz, security refusals, soak. Prints a summary table at the end.
#   make chaos-short   CI-sized rounds (3 leader kills, 500 fuzz cases, 2 min soak; about 6 min)
#   make chaos         long rounds (CHAOS_LONG=1: 20 leader kills, 5000 fuzz cases, 30 min soak)
# hypothesis (the API fuzz) is a dev requirement (requirements-dev.txt), installed by `make setup`.
.PHONY: chaos chaos-short chaos-scale

# test_scale.py (200 simulated nodes) is not in chaos-short yet: it has not passed end to end on
# this 2-CPU machine (elections flap while the leader serves 200 nodes; at load 10 all 200 nodes
# went Down while 5,000 tasks started, and again at 2,000 on 2026-12-03 13:05 at load 8.4;
# issue 17, docs/scale.md): `make chaos-scale`. Still out on 2026-12-03 16:20: with increments and
# the other fixes of docs/scale.md (15-18), 7 runs at load 7-13 (200 / 5,000, then 200 / 2,000)
# did not get all tasks RUNNING within 150 s; the fleet's process, then both sides, starved.
chaos-short: setup
	CHAOS_LONG= $(VENV)/bin/pytest -q -s -p no:cacheprovider --ignore=tests/chaos/test_scale.py tests/chaos

chaos-scale: setup
	CHAOS_LONG= $(VENV)/bin/pytest -q -s -p no:cacheprovider tests/chaos/test_scale.py

chaos: setup
	CHAOS_LONG=1 $(VENV)/bin/pytest -q -s -p no:cacheprovider -o timeout=3600 tests/chaos
