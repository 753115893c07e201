"""swarm_service's job modes on the testbed through Ansible (ad-hoc module runs over ssh): a replicated job
created with wait=true returns once its completions are done, a second run changes nothing, check mode
predicts a rerun and changes nothing, force_update reruns it, a bad count fails and creates nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integration.ansible_adhoc import run_module
from integration.cluster_helpers import api, form_cluster, wipe_cluster
from testbed.bed import Testbed

BATCH: dict[str, Any] = {
    "name": "batch",
    "image": "shoal/host",
    "command": ["sh", "-c", "sleep 1"],
    "mode": "replicated-job",
    "replicas": 3,
    "max_concurrent": 2,
    "wait": True,
    "wait_timeout": 90,
}


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_ansible_jobs")


def module(bed: Testbed, args: dict[str, Any], check: bool = False) -> tuple[int, dict[str, Any], str]:
    return run_module(bed, "swarm_service", args, check=check)


def completed(bed: Testbed, iteration: int) -> list[dict[str, Any]]:
    tasks = api(bed, "swarm00").get("/tasks", filters={"service": ["batch"]})
    return [
        t
        for t in tasks
        if (t.get("JobIteration") or {}).get("Index", 0) == iteration and t["Status"]["State"] == "complete"
    ]


def test_job_through_ansible(cluster: Testbed) -> None:
    rc, result, out = module(cluster, BATCH)
    assert rc == 0 and result["changed"], out
    assert len(completed(cluster, 0)) == 3  # wait=true returned after the completions
    assert len(result["tasks"]) == 3
    rc, result, out = module(cluster, BATCH)
    assert rc == 0 and not result["changed"], out
    rc, result, out = module(cluster, {**BATCH, "force_update": True}, check=True)
    assert rc == 0 and result["changed"], out
    assert api(cluster, "swarm00").get("/services/batch")["JobStatus"]["JobIteration"]["Index"] == 0
    rc, result, out = module(cluster, {**BATCH, "force_update": True})
    assert rc == 0 and result["changed"], out
    assert len(completed(cluster, 1)) == 3
    rc, result, out = module(cluster, {**BATCH, "name": "bad", "max_concurrent": -1})
    assert rc != 0 and "max_concurrent" in result.get("msg", ""), out
    assert [s["Spec"]["Name"] for s in api(cluster, "swarm00").get("/services")] == ["batch"]
