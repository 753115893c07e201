"""A benchmark's figures as data and a picture: `record()` what you print, and at exit the
benchmark's figures go to `.state/bench/<benchmark>.json` and a PNG chart beside it (matplotlib,
headless). Each figure is one value or a list of samples (drawn as points with their median).
"""

from __future__ import annotations

import atexit
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / ".state" / "bench"
_figures: dict[str, dict[str, Any]] = {}
_name = Path(sys.argv[0]).stem


def record(label: str, value: float | list[float], unit: str = "s", goal: float | None = None) -> None:
    """One figure of this benchmark (the same label again adds samples)."""
    samples = list(value) if isinstance(value, list | tuple) else [float(value)]
    fig = _figures.setdefault(label, {"unit": unit, "samples": [], "goal": goal})
    fig["samples"] += [float(v) for v in samples]


def chart(name: str, figures: dict[str, dict[str, Any]], path: Path) -> None:
    """One panel per unit (seconds beside milliseconds on one axis hid the small ones)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = list(dict.fromkeys(f["unit"] for f in figures.values()))
    panels = [[label for label, f in figures.items() if f["unit"] == unit] for unit in units]
    width = max(6.0, 1.5 * max(len(p) for p in panels) + 2)
    fig, axes = plt.subplots(len(units), 1, figsize=(width, 3.4 * len(units)), dpi=100, squeeze=False)
    for ax, unit, labels in zip(axes[:, 0], units, panels, strict=True):
        for i, label in enumerate(labels):
            samples = figures[label]["samples"]
            ax.scatter([i] * len(samples), samples, s=14, alpha=0.55, color="#2f6db5")
            median = statistics.median(samples)
            ax.hlines(median, i - 0.3, i + 0.3, color="#1d2b4f", linewidth=2)
            ax.annotate(f"{median:.3g} {unit}", (i + 0.32, median), fontsize=8, va="center")
            goal = figures[label].get("goal")
            if goal is not None:
                ax.hlines(goal, i - 0.35, i + 0.35, color="#c0392b", linestyles="dashed", linewidth=1)
        ax.set_xticks(range(len(labels)), labels, rotation=12, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(labels) - 0.2)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_title(f"{name} (median bar; dashed red: goal)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@atexit.register
def _save() -> None:
    if not _figures:
        return
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": _name, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "figures": _figures}
    (OUT / f"{_name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    try:
        chart(_name, _figures, OUT / f"{_name}.png")
    except Exception as exc:  # figures are saved; a chart problem must not fail the benchmark
        print(f"  (no chart for {_name}: {exc})", file=sys.stderr)
    print(f"  figures: {OUT / (_name + '.json')} and .png")


if __name__ == "__main__":  # redraw: python bench/_figures.py .state/bench/converge.json [out.png]
    doc = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(sys.argv[1]).with_suffix(".png")
    chart(doc["benchmark"], doc["figures"], out)
