"""shoal.model.ids: IDs, RFC 3339 timestamps, Go durations."""

from __future__ import annotations

import re
import time

import pytest

from shoal.model import SpecError
from shoal.model.ids import (
    format_duration,
    format_rfc3339,
    new_id,
    now_rfc3339,
    parse_duration,
    parse_rfc3339,
    short_id,
    to_base36,
)


def test_new_id_shape_and_uniqueness() -> None:
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[0-9a-z]{25}", i) for i in ids)


def test_short_id() -> None:
    assert short_id("abajmipo7b4xz5ip2nrla6b11") == "abajmipo7b4x"


def test_to_base36() -> None:
    assert to_base36(0, 3) == "000"
    assert to_base36(35, 1) == "z"
    assert to_base36(36, 1) == "10"
    assert to_base36(2**128 - 1, 25) == "f5lxx1zz5pnorynqglhzmsp33"
    with pytest.raises(ValueError):
        to_base36(-1, 1)


def test_format_rfc3339_fixed_width() -> None:
    assert format_rfc3339(0) == "1970-01-01T00:00:00.000000000Z"
    assert format_rfc3339(1_800_000_000_123_456_789) == "2027-01-15T08:00:00.123456789Z"


def test_now_rfc3339_is_now() -> None:
    before = time.time_ns()
    stamp = now_rfc3339()
    after = time.time_ns()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", stamp)
    assert before <= parse_rfc3339(stamp) <= after


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2016-08-18T10:44:24.496525531Z", 1471517064496525531),
        ("2016-08-18T10:44:24.4965Z", 1471517064496500000),  # Go trims trailing zeros
        ("2016-08-18T10:44:24Z", 1471517064000000000),
        ("2016-08-18T12:44:24.5+02:00", 1471517064500000000),
        ("2016-08-18T08:44:24-02:00", 1471517064000000000),
        ("0001-01-01T00:00:00Z", -62135596800000000000),  # Go's zero time, Docker's "unset"
    ],
)
def test_parse_rfc3339(text: str, ns: int) -> None:
    assert parse_rfc3339(text) == ns


@pytest.mark.parametrize("bad", ["", "yesterday", "2016-08-18 10:44:24Z", "2016-13-01T00:00:00Z", "2016-08-18T10:44Z"])
def test_parse_rfc3339_rejects(bad: str) -> None:
    with pytest.raises(SpecError, match="invalid timestamp"):
        parse_rfc3339(bad)


def test_rfc3339_round_trip() -> None:
    for ns in (0, 1, 999_999_999, 1_700_000_000_000_000_001, time.time_ns()):
        assert parse_rfc3339(format_rfc3339(ns)) == ns


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("0s", 0),
        ("5s", 5_000_000_000),
        ("1m30s", 90_000_000_000),
        ("500ms", 500_000_000),
        ("1.5h", 5_400_000_000_000),
        (".5s", 500_000_000),
        ("2160h0m0s", 7_776_000_000_000_000),
        ("1h2m3.004005006s", 3_723_004_005_006),
        ("10us", 10_000),
        ("10\u00b5s", 10_000),
        ("10\u03bcs", 10_000),
        ("7ns", 7),
        ("-2h", -7_200_000_000_000),
        ("+3s", 3_000_000_000),
        (" 5s ", 5_000_000_000),
        (1_000_000_000, 1_000_000_000),
    ],
)
def test_parse_duration(text: str | int, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("bad", ["", "5", "s", "5x", "1.s.", "-", ".s", "5 s", "1e3s", True, 1.5, None, "9999999999h"])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(SpecError, match="duration"):
        parse_duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5\u00b5s"),
        (500_000_000, "500ms"),
        (1_000_000_000, "1s"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (7_776_000_000_000_000, "2160h0m0s"),
        (3_723_004_005_006, "1h2m3.004005006s"),
        (-90_000_000_000, "-1m30s"),
    ],
)
def test_format_duration_matches_go(ns: int, text: str) -> None:
    assert format_duration(ns) == text
    assert parse_duration(text) == ns
