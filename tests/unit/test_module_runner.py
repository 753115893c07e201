"""The shared runner of the collection's modules: the checks it makes from a task's declarations."""

from __future__ import annotations

import pytest

import unit.test_module_support  # noqa: F401  (puts the collection on sys.path)

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import (  # isort: skip
    ParamError,
    check_bounds,
    check_state_options,
)

SPEC = {
    "state": {"type": "str", "default": "present"},
    "image": {"type": "str"},
    "force": {"type": "bool", "default": False},
    "wait": {"type": "bool", "default": False},
}
BY_STATE = {"present": ("image",), "absent": ("force",)}


def test_options_of_the_other_state_are_refused_by_name() -> None:
    with pytest.raises(ParamError, match=r"^state=absent: these options apply to state=present only: image$"):
        check_state_options({"state": "absent", "image": "x", "force": True}, SPEC, BY_STATE)
    with pytest.raises(ParamError, match=r"^state=present: these options apply to state=absent only: force$"):
        check_state_options({"state": "present", "image": "x", "force": True}, SPEC, BY_STATE)


def test_a_default_value_is_not_given() -> None:
    check_state_options({"state": "present", "image": "x", "force": False}, SPEC, BY_STATE)
    check_state_options({"state": "absent", "image": None, "force": True}, SPEC, BY_STATE)


BOUNDS = {
    "replicas": (0, None),
    "wait_timeout": (1, None),
    "publish.target_port": (1, 65535),
    "update_config.max_failure_ratio": (0, 1),
    "limit": (None, 10),
}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"replicas": -1}, "replicas must be 0 or more, not -1"),
        ({"wait_timeout": 0}, "wait_timeout must be at least 1, not 0"),
        (
            {"publish": [{"target_port": 80}, {"target_port": 0}]},
            "publish.target_port must be between 1 and 65535, not 0",
        ),
        (
            {"update_config": {"max_failure_ratio": 1.5}},
            "update_config.max_failure_ratio must be between 0 and 1, not 1.5",
        ),
        ({"limit": 11}, "limit must be at most 10, not 11"),
    ],
)
def test_numbers_out_of_bounds_are_refused_with_the_rule(params: dict, message: str) -> None:
    with pytest.raises(ParamError) as exc:
        check_bounds(params, BOUNDS)
    assert str(exc.value) == message


def test_numbers_in_bounds_and_unset_options_pass() -> None:
    check_bounds(
        {
            "replicas": 0,
            "wait_timeout": 1,
            "publish": [{"target_port": 65535}],
            "update_config": None,
            "limit": 10,
        },
        BOUNDS,
    )
    check_bounds({"publish": None, "update_config": {"max_failure_ratio": None}}, BOUNDS)
