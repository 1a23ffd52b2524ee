"""The metrics plot of an evaluation report (``metrics.png``).

One panel per metric of paper Table 1 (Speech-BLEU, Text-BLEU, SLC 0.2/0.4, speaker similarity,
MOS; RTF is left out: it is a cost, not a quality), bars grouped by direction: the model's modes
side by side, then the toplines (hatched grey) beside them, so how far a mode is from what the data
and codec allow reads off one panel. Slice ``all`` only (the slices are in the tables).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evaluation.common import ALL_SLICE, DIRECTIONS, MODES, TOPLINE_CODEC, TOPLINE_REFERENCE, TOPLINES
from uniss.metrics import TABLE1_METRICS

__all__ = ["TITLES", "plot_metrics"]

#: Column titles of the Table 1 style table (and plot panels); units in brackets.
TITLES = {
    "speech_bleu": "Speech-BLEU",
    "text_bleu": "Text-BLEU",
    "slc_0.2": "SLC 0.2",
    "slc_0.4": "SLC 0.4",
    "speaker_sim": "Spk-Sim",
    "mos": "MOS (DNSMOS)",
    "rtf": "RTF",
}

#: Bar style per row: model modes in blues, toplines hatched greys.
_STYLE = {
    "quality": {"color": "#1f4e99"},
    "performance": {"color": "#4a86d4"},
    "direct": {"color": "#9cc3f0"},
    TOPLINE_REFERENCE: {"color": "#7f7f7f", "hatch": "//", "edgecolor": "white"},
    TOPLINE_CODEC: {"color": "#bfbfbf", "hatch": "..", "edgecolor": "white"},
}


def plot_metrics(report: Any, path: Path) -> None:
    """Write the metrics plot of ``report`` (an ``EvalReport``) to ``path`` (PNG, 100 dpi).

    x axis: directions (``EN-ZH``, ``ZH-EN``); within a direction one bar per mode then per
    topline, named in the figure legend (no per-bar tick labels, so none overlap). NaN values
    (e.g. Text-BLEU of Direct mode and of toplines) draw no bar and print ``n/a``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in TABLE1_METRICS if m != "rtf"]
    groups = [g for g in report.groups if g.slice == ALL_SLICE]
    dirs = sorted({g.direction for g in groups}, key=DIRECTIONS.index)
    rows = [r for r in (*MODES, *TOPLINES) if any(g.mode == r for g in groups)]
    by = {(g.direction, g.mode): g.metrics() for g in groups}
    ncols = 3
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows + 0.6), squeeze=False)
    width = 0.8 / max(1, len(rows))
    for ax, m in zip(axes.flat, metrics, strict=False):
        for j, r in enumerate(rows):
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(dirs))]
            vals = [by.get((d, r), {}).get(m, float("nan")) for d in dirs]
            bars = ax.bar(xs, [0 if math.isnan(v) else v for v in vals], width * 0.92, label=r, **_STYLE[r])
            for b, v in zip(bars, vals, strict=True):
                txt = "n/a" if math.isnan(v) else (f"{v:.1f}" if "bleu" in m else f"{v:.2f}")
                ax.annotate(txt, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                            fontsize=6, rotation=90 if len(rows) * len(dirs) > 8 else 0,
                            xytext=(0, 1), textcoords="offset points")
        ax.set_xticks(range(len(dirs)), [d.upper() for d in dirs], fontsize=9)
        ax.set_title(TITLES[m], fontsize=10)
        ax.margins(y=0.18)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(rows), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
