"""The plot of score against input length, one panel per family, one line per method (PNG).

Needs matplotlib (the `bench` extra); `plot` says so in a usage error when it is missing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from rlm_cli.bench.report import Row
from rlm_cli.errors import UsageError


def plot(rows: Sequence[Row], path: Path, title: str = "rlm bench") -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError('the plot needs matplotlib: pip install "rlm-cli[bench]"') from None
    families = list(dict.fromkeys(r.family for r in rows))
    columns = min(3, len(families))
    lines = -(-len(families) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(5 * columns, 3.6 * lines), squeeze=False)
    for ax, family in zip(axes.flat, families):
        series: dict[str, list[Row]] = defaultdict(list)
        for r in rows:
            if r.family == family:
                series[r.method].append(r)
        for method, points in series.items():
            points.sort(key=lambda r: r.chars)
            ax.plot([r.chars for r in points], [r.score for r in points], marker="o", label=method)
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(family)
        ax.set_xlabel("input characters")
        ax.set_ylabel("score")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(families):]:
        ax.set_visible(False)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
