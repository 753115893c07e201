"""Constraint parsing and matching, placement validation (shoal.model.constraints)."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.manager.scheduler import (
    ConstraintError,
    node_matches,
    parse_constraint,
    parse_constraints,
    spread_descriptors,
    validate_placement,
)

NODE: dict[str, Any] = {
    "ID": "node1abc",
    "Spec": {"Role": "worker", "Availability": "active", "Labels": {"zone": "East", "Disk": "ssd"}},
    "Description": {
        "Hostname": "swarm01",
        "Platform": {"OS": "linux", "Architecture": "x86_64"},
        "Engine": {"Labels": {"operatingsystem": "debian 12"}},
    },
    "Status": {"State": "ready"},
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("node.id==node1abc", True),
        ("node.id!=node1abc", False),
        ("node.hostname==swarm01", True),
        ("node.hostname!=swarm02", True),
        ("node.role==worker", True),
        ("node.role==manager", False),
        ("node.role!=manager", True),
        ("node.platform.os==linux", True),
        ("node.platform.arch==x86_64", True),
        ("node.platform.arch!=x86_64", False),
        ("node.labels.zone==east", True),  # values compare case-insensitively, as Docker
        ("node.labels.zone==west", False),
        ("node.labels.Disk==ssd", True),
        ("node.labels.disk==ssd", False),  # label names are case-sensitive
        ("node.labels.missing!=x", True),  # a missing label is the empty value
        ("node.labels.missing==x", False),
        ("engine.labels.operatingsystem==debian 12", True),
        ("engine.labels.operatingsystem!=debian 12", False),
        ("Node.Role==WORKER", True),  # keys are case-insensitive
        (" node.role == worker ", True),  # spaces around parts are trimmed
    ],
)
def test_constraint_matches(expr: str, expected: bool) -> None:
    c = parse_constraint(expr)
    assert c.matches(NODE) is expected


def test_constraints_are_anded() -> None:
    both = parse_constraints(["node.role==worker", "node.labels.zone==east"])
    assert node_matches(both, NODE)
    assert not node_matches([*both, parse_constraint("node.hostname==other")], NODE)
    assert node_matches([], NODE)


def test_node_without_description_matches_empty_values() -> None:
    bare = {"ID": "x", "Spec": {"Role": "manager"}}
    assert node_matches(parse_constraints(["node.hostname!=swarm01", "engine.labels.a!=b"]), bare)
    assert not node_matches(parse_constraints(["node.platform.os==linux"]), bare)


def test_constraint_keeps_its_parts() -> None:
    c = parse_constraint("node.labels.zone != east")
    assert (c.key, c.operator, c.value, str(c)) == ("node.labels.zone", "!=", "east", "node.labels.zone!=east")
    assert parse_constraints(None) == []


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("node.foo==x", 'invalid constraint "node.foo==x": unknown key'),
        ("node.labels.==x", 'invalid constraint "node.labels.==x": unknown key'),
        ("engine.labels==x", 'invalid constraint "engine.labels==x": unknown key'),
        ("node.role=worker", 'invalid constraint "node.role=worker": expected one operator from ==, !='),
        ("node.role", 'invalid constraint "node.role": expected one operator from ==, !='),
        ("node.role==", "invalid constraint \"node.role==\": value '' is invalid"),
        ("==worker", "invalid constraint \"==worker\": key '' is invalid"),
        ("node role==worker", "invalid constraint \"node role==worker\": key 'node role' is invalid"),
        ("node.role==a!=b", "invalid constraint \"node.role==a!=b\": value 'a!=b' is invalid"),
    ],
)
def test_bad_constraints_are_refused_with_docker_like_messages(expr: str, message: str) -> None:
    with pytest.raises(ConstraintError) as err:
        parse_constraints(["node.role==worker", expr])
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)  # the API maps ValueError to 400


def test_spread_descriptors_keep_label_ones_in_order() -> None:
    prefs = [
        {"Spread": {"SpreadDescriptor": "node.labels.dc"}},
        {"Spread": {"SpreadDescriptor": "node.id"}},  # ignored at scheduling time, as SwarmKit
        {"Spread": {"SpreadDescriptor": "engine.labels.rack"}},
        {},
    ]
    assert spread_descriptors(prefs) == ["node.labels.dc", "engine.labels.rack"]


def test_validate_placement_accepts_a_full_placement() -> None:
    validate_placement(None)
    validate_placement(
        {
            "Constraints": ["node.role==worker", "engine.labels.os!=windows"],
            "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
            "MaxReplicas": 2,
            "Platforms": [{"OS": "linux", "Architecture": "amd64"}],
        }
    )


@pytest.mark.parametrize(
    ("placement", "fragment"),
    [
        ({"Constraints": ["node.foo==x"]}, 'invalid constraint "node.foo==x": unknown key'),
        ({"Constraints": "node.role==worker"}, "Constraints must be a list"),
        ({"Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}]}, '"spread=node.id"'),
        ({"Preferences": [{"Other": {}}]}, "only Spread"),
        ({"MaxReplicas": -1}, "MaxReplicas must be a non-negative integer"),
        ({"MaxReplicas": "2"}, "MaxReplicas must be a non-negative integer"),
        ({"Platforms": ["linux"]}, "invalid placement platform"),
    ],
)
def test_validate_placement_refuses_bad_input(placement: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConstraintError, match=None) as err:
        validate_placement(placement)
    assert fragment in str(err.value)
