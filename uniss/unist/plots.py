"""Data plots (PNG into ``DATA/plots/``): duration-ratio histogram General vs HQ (paper Fig. 3),
source/target duration distributions, WER/CER histograms. matplotlib with the Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def write_plots(samples: pd.DataFrame, quarantine: pd.DataFrame, out_dir: str | Path) -> list[str]:
    """Write the three plot files.

    Args:
        samples: sample table (``ratio``, ``hq_ratio``, ``hq``, durations in s, ``src_wer``, ``tgt_wer``).
        quarantine: dropped rows (their error rates are drawn too, when measured).
        out_dir: ``DATA/plots``.

    Returns:
        relative file names written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    bins = np.arange(0.3, 2.3, 0.05)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(samples["ratio"], bins=bins, alpha=0.6, label=f"General (n={len(samples)})")
    hq = samples[samples["hq"]]
    ax.hist(hq["hq_ratio"], bins=bins, alpha=0.6, label=f"HQ, VAD-trimmed (n={len(hq)})")
    ax.set_xlabel("duration ratio target/source")
    ax.set_ylabel("samples")
    ax.set_title("UniST duration ratio (cf. paper Fig. 3)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "duration_ratio.png", dpi=100)
    plt.close(fig)
    names.append("duration_ratio.png")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for ax, col in zip(axes, ("src_duration_s", "tgt_duration_s")):
        ax.hist(samples[col], bins=30, alpha=0.6, label="General")
        ax.hist(hq[col], bins=30, alpha=0.6, label="HQ")
        ax.set_xlabel(f"{col} (s)")
        ax.legend()
    axes[0].set_ylabel("samples")
    fig.tight_layout()
    fig.savefig(out / "durations.png", dpi=100)
    plt.close(fig)
    names.append("durations.png")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, col, title in zip(axes, ("src_wer", "tgt_wer"), ("source re-ASR", "target ASR")):
        for lang, g in samples.groupby("src_lang" if col == "src_wer" else "tgt_lang"):
            ax.hist(g[col].astype(float), bins=np.linspace(0, 1, 21), alpha=0.6, label=f"kept {lang}")
        if col in quarantine:
            dq = pd.to_numeric(quarantine[col], errors="coerce").dropna()
            if len(dq):
                ax.hist(dq.clip(upper=1.0), bins=np.linspace(0, 1, 21), alpha=0.4, label="quarantined")
        ax.set_xlabel(f"{title} error (WER en / CER zh)")
        ax.legend()
    axes[0].set_ylabel("samples")
    fig.tight_layout()
    fig.savefig(out / "wer.png", dpi=100)
    plt.close(fig)
    names.append("wer.png")
    return names
