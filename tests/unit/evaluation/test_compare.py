"""evaluation.compare: the paper Table 4 markdown (deltas vs the first row)."""

from evaluation.compare import comparison_markdown


def test_comparison_markdown_deltas():
    import pandas as pd

    df = pd.DataFrame([
        {"variant": "phase 1+2", "run_id": "a", "mode": "performance", "speech_bleu.en-zh": 29.38, "speech_bleu.zh-en": 21.55},
        {"variant": "w/ phase 3", "run_id": "b", "mode": "performance", "speech_bleu.en-zh": 30.28, "speech_bleu.zh-en": 23.61},
    ])
    for d in ("en-zh", "zh-en"):
        df[f"delta.{d}"] = df[f"speech_bleu.{d}"] - df[f"speech_bleu.{d}"].iloc[0]
    md = comparison_markdown(df)
    assert "| w/ phase 3 | performance | 30.28 | 23.61 | +0.90 | +2.06 |" in md
