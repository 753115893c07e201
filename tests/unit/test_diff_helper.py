"""The desired-vs-current helper (module_utils/_shoal_diff.py): changed, changes, diff.before/after."""

from __future__ import annotations

import unit.test_module_support  # noqa: F401 - puts the collection on sys.path

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_diff import (  # isort: skip
    DifferenceTracker,
    compare,
    values_differ,
)


def test_none_means_leave_as_is() -> None:
    current = {"role": "worker", "availability": "active", "labels": {"zone": "a"}}
    result = compare(current, {"role": None, "availability": None, "labels": None})
    assert not result.changed and result.changes == []
    assert result.diff == {"before": current, "after": current}
    assert result.result() == {"changed": False, "changes": [], "diff": {"before": current, "after": current}}


def test_differences_are_listed_in_the_order_asked_and_after_is_merged() -> None:
    current = {"role": "worker", "availability": "active", "labels": {"zone": "a"}}
    result = compare(current, {"availability": "drain", "role": "worker", "labels": {"zone": "b"}})
    assert result.changed and result.changes == ["availability", "labels"]
    assert result.diff["before"] == current
    assert result.diff["after"] == {"role": "worker", "availability": "drain", "labels": {"zone": "b"}}
    before, after = result.tracker.get_before_after()
    assert before == {"availability": "active", "labels": {"zone": "a"}}
    assert after == {"availability": "drain", "labels": {"zone": "b"}}


def test_compare_does_not_alias_or_mutate_its_inputs() -> None:
    current = {"labels": {"zone": "a"}}
    desired = {"labels": {"zone": "b"}}
    result = compare(current, desired)
    result.diff["after"]["labels"]["zone"] = "x"
    result.diff["before"]["labels"]["zone"] = "y"
    assert current == {"labels": {"zone": "a"}} and desired == {"labels": {"zone": "b"}}


def test_unknown_current_field_counts_as_a_difference() -> None:
    result = compare({}, {"task_history_limit": 5})
    assert result.changes == ["task_history_limit"]
    assert result.diff == {"before": {}, "after": {"task_history_limit": 5}}


def test_values_differ_on_maps_lists_and_scalars() -> None:
    assert not values_differ({"a": "1"}, {"a": "1"})
    assert values_differ({"a": "1"}, {"a": "1", "b": "2"})  # a map is compared whole
    assert not values_differ({"a": None}, {})  # a missing key equals None
    assert values_differ({"a": "1"}, "a=1")
    assert values_differ(["a", "b"], ["b", "a"])
    assert not values_differ(["a", "b"], ["b", "a"], unordered=True)
    assert values_differ(["a", "a"], ["a", "b"], unordered=True)
    assert values_differ([1], [1, 2])
    assert not values_differ([{"x": [1]}], [{"x": [1]}])
    assert values_differ(5, "5")
    assert not values_differ(None, None)


def test_unordered_fields_ignore_order() -> None:
    current = {"pools": ["10.0.0.0/8", "172.16.0.0/12"]}
    assert not compare(current, {"pools": ["172.16.0.0/12", "10.0.0.0/8"]}, unordered=["pools"]).changed
    assert compare(current, {"pools": ["172.16.0.0/12", "10.0.0.0/8"]}).changed


def test_difference_tracker_like_community_docker() -> None:
    tracker = DifferenceTracker()
    assert tracker.empty
    tracker.add("replicas", parameter=3, active=1)
    other = DifferenceTracker()
    other.add("image", parameter="b", active="a")
    tracker.merge(other)
    assert not tracker.empty and tracker.changes == ["replicas", "image"]
    assert tracker.has_difference_for("image") and not tracker.has_difference_for("env")
    assert tracker.get_before_after() == ({"replicas": 1, "image": "a"}, {"replicas": 3, "image": "b"})
