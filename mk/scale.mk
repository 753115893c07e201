# Scale (bench/scale.py, docs/scale.md): three drained managers and simulated nodes
# (`python -m shoal.sim`: real joins, TLS sessions, heartbeats and assignments; tasks only recorded).
#   make bench-scale                                 1,000 nodes / 30,000 tasks
#   make bench-scale SCALE_ARGS="--nodes 50 --tasks 500"
#   make bench-scale SCALE_ARGS=--growth             100, 300, 1,000 nodes and how each figure grows
# Not part of `make bench` (it takes the testbed for many minutes); takes the testbed lock itself.
.PHONY: bench-scale
SCALE_ARGS ?=

bench-scale: setup
	$(VPY) bench/scale.py $(SCALE_ARGS)
