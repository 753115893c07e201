"""The agent's GIL switch interval: a setting with sane bounds, applied at start."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shoal import config, daemon


def test_the_setting_takes_a_sane_interval_and_refuses_others(tmp_path: Path) -> None:
    path = tmp_path / "shoald.yml"
    assert config.load(None).gil_switch_interval == 0.001
    path.write_text("gil_switch_interval: 0.0005\n")
    assert config.load(path).gil_switch_interval == 0.0005
    for bad in ("0", "1", "-0.001", "fast"):
        path.write_text(f"gil_switch_interval: {bad}\n")
        with pytest.raises(config.ConfigError, match="gil_switch_interval"):
            config.load(path)
    args = daemon.build_parser().parse_args(["--gil-switch-interval", "0.002"])
    assert config.from_args(args).gil_switch_interval == 0.002


def test_the_daemon_applies_it() -> None:
    before = sys.getswitchinterval()
    try:
        daemon.tune_interpreter(config.load(None))
        assert sys.getswitchinterval() == pytest.approx(0.001)
    finally:
        sys.setswitchinterval(before)
