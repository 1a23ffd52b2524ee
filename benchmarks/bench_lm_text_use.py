"""Does the LM's speech stream read the text? (issue 16: the demo model learns the text, not the speech)

The demo model reaches Text-BLEU ~40 and Speech-BLEU ~1-3 while its codec allows ~20-40. This
benchmark asks *why*, with no codec or ASR in the loop. On the TTS format of paper §3.3 (speaker
tokens + target text -> 50 Hz semantic units, ``training.samples.build_sample(task="tts",
side="tgt")``) it scores the model's semantic-unit predictions under teacher forcing, once with each
row's own prompt and once with one prompt field taken from another row (row ``i + shift``):

* ``true``: the row's own text and speaker tokens;
* ``other_text``: another row's target text (the units to predict stay the row's own);
* ``other_speaker``: another row's 32 speaker tokens;
* ``other_text_and_speaker``: both.

A model whose units follow the text loses accuracy and gains cross-entropy when the text is wrong;
a model that continues the unit sequence from its own history does not notice. ``text_use`` is the
rise of the mean cross-entropy (nats per unit) at unit changes when the text is swapped, the most
sensitive of the four figures: inside a run the next unit is the previous one whatever the text.
Scores are split into all units, unit changes (a unit differing from the previous one), and the
first ``--head`` units (short history, where only the prompt can help).

It also decodes the units free-running (greedy, and the paper's sampling; through the KV cache, on
the ``true`` rows) from the true prompt for as
many steps as the true clip has units, and gives the de-duplicated unit error rate (``jiwer`` word
alignment over run values) split into substitutions, deletions and insertions, with the ratio of
output runs to true runs: whether free running stalls in runs (deletions, ratio < 1) or picks wrong
units (substitutions).

Measured 2026-12-04 on the models of session 15's final cold demo (30 rows a split, held-out test
split unless noted; CE = cross-entropy in nats per unit at unit changes, true text -> other text):

| model | CE at changes | text use | acc at changes | greedy free running: unit error (sub / del) |
|---|---|---|---|---|
| phase 3 (the promoted model) | 1.854 -> 1.864 | +0.010 | 0.528 -> 0.534 | 0.64 (0.39 / 0.18) |
| phase 3, train rows | 0.458 -> 0.462 | +0.004 | 0.850 -> 0.847 | 0.69 (0.47 / 0.16) |
| phase 1 (its input) | 2.078 -> 2.089 | +0.011 | 0.420 -> 0.419 | 0.71 (0.38 / 0.32) |
| phase 1, ``data.speech_input_noise`` 0.7 | 2.985 -> 3.066 | +0.081 | 0.220 -> 0.212 | 0.73 (0.27 / 0.47) |
| phase 1, TTS samples only, same 2,980 steps | 1.933 -> 2.049 | +0.116 | 0.431 -> 0.406 | 0.66 (0.37 / 0.25) |

So the demo model's speech stream ignores the text, and the speaker tokens too (other speaker
tokens: 0.850 -> 0.855 at changes on train rows). On train rows it has memorised each clip's
continuation from its own unit history (0.90 teacher-forced with any text), and free running from
the true text fails on train rows as on test rows, mostly by substitutions. Sampling (T 0.7, top-p
0.8) gives the same error rates as greedy (0.67 / 0.70 for the promoted model), so decoding cannot
fix it. Corrupting the unit history (0.7) or giving every phase-1 step to TTS makes the units depend
on the text a little (text use +0.08 / +0.12 nats, +0.31 / +0.11 over the first 25 units), far from
enough: free running stays at 0.66-0.73.

Run:  nice .venv/bin/python benchmarks/bench_lm_text_use.py [--bundle DIR] [--data DIR] [--n 30]
Defaults: the newest ``uniss retrain`` run under ``$UNISS_HOME/pipeline_root`` (its
``train-phase-3/bundle`` and validated ``checkout-unist/data``). Writes
``benchmarks/results/lm_text_use_<tag>.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_unit_decoder import write_result  # noqa: E402  (a sibling script)

#: Prompt fields swapped by each condition (UniST row columns read by ``build_sample`` for TTS, tgt side).
CONDITIONS: dict[str, tuple[str, ...]] = {
    "true": (),
    "other_text": ("tgt_text",),
    "other_speaker": ("tgt_speaker",),
    "other_text_and_speaker": ("tgt_text", "tgt_speaker"),
}


def latest_run(arg_bundle: str | None, arg_data: str | None) -> tuple[Path, Path]:
    """``(bundle, data)``: the arguments where given, else the newest ``uniss retrain`` run's
    ``train-phase-3/bundle`` and ``checkout-unist/data`` under ``$UNISS_HOME/pipeline_root``.
    Exits with a message when there is none."""
    if arg_bundle and arg_data:
        return Path(arg_bundle), Path(arg_data)
    from uniss.settings import get_settings

    runs = sorted(glob.glob(str(get_settings().home / "pipeline_root" / "uniss-retrain-*")))
    runs = [r for r in runs if (Path(r) / "train-phase-3" / "bundle").is_dir()]
    if not runs:
        raise SystemExit("no finished uniss retrain run under $UNISS_HOME/pipeline_root: run `make demo` or pass "
                         "--bundle and --data")
    run = Path(runs[-1])
    return Path(arg_bundle or run / "train-phase-3" / "bundle"), Path(arg_data or run / "checkout-unist" / "data")


def swapped(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], shift: int) -> list[dict[str, Any]]:
    """Copies of ``rows`` with the fields ``keys`` taken from row ``(i + shift) % n``.

    Raises:
        ValueError: ``shift % n == 0`` while ``keys`` is not empty (the swap would change nothing).
    """
    n = len(rows)
    if keys and shift % n == 0:
        raise ValueError(f"shift {shift} maps every one of the {n} rows onto itself")
    return [{**rows[i], **{k: rows[(i + shift) % n][k] for k in keys}} for i in range(n)]


def unit_scores(logits: np.ndarray, truth: np.ndarray, head: int) -> dict[str, float]:
    """Teacher-forced scores of one clip's semantic units.

    Args:
        logits: ``(T, K)`` float logits over the ``K`` semantic units at the positions that predict them.
        truth: ``(T,)`` int unit indices in ``[0, K)`` (the labels).
        head: the first ``head`` units form the ``head`` group.

    Returns:
        ``acc`` / ``ce`` (nats per unit) over all units, at unit changes (``truth[t] != truth[t-1]``;
        NaN when the clip has none) and over the head.
    """
    logits = np.asarray(logits, np.float64)
    truth = np.asarray(truth, np.int64)
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))  # (T, K)
    ce = -logp[np.arange(len(truth)), truth]  # (T,)
    ok = logits.argmax(-1) == truth  # (T,)
    change = np.r_[False, truth[1:] != truth[:-1]]
    first = np.arange(len(truth)) < head

    def m(x: np.ndarray, sel: np.ndarray) -> float:
        return float(x[sel].mean()) if sel.any() else float("nan")

    every = np.ones(len(truth), bool)
    return {"acc": m(ok, every), "ce": m(ce, every), "acc_at_changes": m(ok, change), "ce_at_changes": m(ce, change),
            "acc_head": m(ok, first), "ce_head": m(ce, first)}


def runs(units: Sequence[int]) -> list[int]:
    """Run values of a unit string (consecutive repeats collapsed): ``[5, 5, 7, 5] -> [5, 7, 5]``."""
    return [int(u) for i, u in enumerate(units) if i == 0 or units[i - 1] != u]


def run_errors(truth: Sequence[int], out: Sequence[int]) -> dict[str, float]:
    """De-duplicated unit edit counts of ``out`` against ``truth`` (``jiwer`` word alignment over the
    run values): ``sub``, ``del``, ``ins``, ``ref`` (true runs), ``hyp`` (output runs).

    Raises:
        ValueError: an empty ``truth``.
    """
    import jiwer

    t, o = runs(list(truth)), runs(list(out))
    if not t:
        raise ValueError("empty reference unit string")
    a = jiwer.process_words(" ".join(f"u{x}" for x in t), " ".join(f"u{x}" for x in o) or "<empty>")
    return {"sub": a.substitutions, "del": a.deletions, "ins": a.insertions, "ref": len(t), "hyp": len(o)}


def tts_case(vocab, encode_text: Callable[[str], list[int]], row: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(input_ids (L,) int64, truth (T,) int64 unit indices, pos (T,) int64)``: the TTS sample of
    ``row``'s target side and the positions of its semantic labels (``training.samples.build_sample``:
    labels are aligned with the inputs, so position ``p`` is predicted by the logits at ``p - 1``)."""
    from training.samples import build_sample

    s = build_sample(vocab, encode_text, row, "tts", side="tgt")
    lo, hi = vocab.range("semantic")
    lab = np.asarray(s.labels)
    pos = np.where((lab >= lo) & (lab < hi))[0]
    return np.asarray(s.input_ids, np.int64), lab[pos] - lo, pos


def score_rows(model, vocab, encode_text, rows: Sequence[Mapping[str, Any]], *, head: int = 25,
               free_running: Sequence[str] = (), seed: int = 0) -> dict[str, Any]:
    """Mean :func:`unit_scores` over ``rows`` (one forward pass each, ``torch.no_grad``), and for
    each rule in ``free_running`` the pooled :func:`run_errors` of decoding from the prompt for as
    many units as the truth holds, the next unit drawn from the semantic family only: ``greedy``
    (argmax) or ``sample`` (the paper's §5.2.4 temperature 0.7 and top-p 0.8, no repetition
    penalty; one ``torch.Generator`` seeded ``seed``).

    Args:
        model: a causal LM (``transformers`` ``Qwen2ForCausalLM``) over the bundle's vocabulary.
        rows: UniST rows with ``tgt_text`` / ``tgt_speaker`` / ``tgt_semantic`` (a tokenized dataset).

    Returns:
        ``n`` and the six means; ``free_running``: per rule ``dedup_unit_error_rate`` (mean over
        clips), ``sub_rate`` / ``del_rate`` / ``ins_rate`` (pooled, per true run) and
        ``runs_out_over_true``.

    Raises:
        ValueError: an unknown free-running rule.
    """
    import torch

    bad = set(free_running) - {"greedy", "sample"}
    if bad:
        raise ValueError(f"unknown free-running rule(s) {sorted(bad)}: greedy | sample")
    lo, hi = vocab.range("semantic")
    gen = torch.Generator().manual_seed(seed)
    per: list[dict[str, float]] = []
    fr: dict[str, list[dict[str, float]]] = {rule: [] for rule in free_running}
    for r in rows:
        ids, truth, pos = tts_case(vocab, encode_text, r)
        if not len(pos):
            continue
        x = torch.from_numpy(ids)[None]
        with torch.no_grad():
            lg = model(input_ids=x).logits[0, torch.from_numpy(pos - 1), lo:hi].float().numpy()  # (T, K)
        per.append(unit_scores(lg, truth, head))
        for rule in free_running:
            out, past, step = [], None, x[:, :int(pos[0])]
            with torch.no_grad():
                for _ in range(len(truth)):
                    o = model(input_ids=step, past_key_values=past, use_cache=True)
                    past = o.past_key_values
                    k = _pick(o.logits[0, -1, lo:hi].float(), rule, gen)
                    out.append(k)
                    step = torch.tensor([[k + lo]])
            fr[rule].append(run_errors(truth, out))
    res: dict[str, Any] = {"n": len(per)}
    for key in (per[0] if per else {}):
        res[key] = round(float(np.nanmean([p[key] for p in per])), 4)
    if fr:
        res["free_running"] = {}
    for rule, errs in fr.items():
        ref = sum(f["ref"] for f in errs) or 1
        d = {"dedup_unit_error_rate": round(float(np.mean([(f["sub"] + f["del"] + f["ins"]) / f["ref"] for f in errs])), 4)}
        for k in ("sub", "del", "ins"):
            d[f"{k}_rate"] = round(sum(f[k] for f in errs) / ref, 4)
        d["runs_out_over_true"] = round(float(np.mean([f["hyp"] / f["ref"] for f in errs])), 4)
        res["free_running"][rule] = d
    return res


def _pick(logits, rule: str, gen) -> int:
    """One unit index from ``(K,)`` logits: argmax, or a temperature-0.7 / top-p-0.8 draw (HF
    ``TopPLogitsWarper`` rule: keep the most probable units until their mass reaches 0.8)."""
    import torch

    if rule == "greedy":
        return int(logits.argmax())
    p, order = torch.softmax(logits / 0.7, -1).sort(descending=True)
    p = p * ((p.cumsum(0) - p) < 0.8)
    return int(order[torch.multinomial(p, 1, generator=gen)])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None, help="model bundle (default: the newest demo run's phase-3 bundle)")
    ap.add_argument("--data", default=None, help="validated UniST dataset directory (default: the newest demo run's)")
    ap.add_argument("--splits", default="test,train", help="comma-separated splits")
    ap.add_argument("--n", type=int, default=30, help="rows a split (the first n General rows)")
    ap.add_argument("--shift", type=int, default=7, help="the swapped fields come from row i + shift")
    ap.add_argument("--head", type=int, default=25, help="units in the 'head' group")
    ap.add_argument("--tag", default="demo")
    a = ap.parse_args(argv)

    import torch

    from training.data import load_rows
    from uniss.bundle import load_bundle

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    bundle, data = latest_run(a.bundle, a.data)
    b = load_bundle(bundle, with_codec=False)
    b.model.eval()

    def enc(s: str) -> list[int]:
        return b.tokenizer.encode(s, add_special_tokens=False)

    out: dict[str, Any] = {"bundle": str(bundle), "data": str(data), "n": a.n, "shift": a.shift, "head": a.head,
                           "cpus": os.cpu_count(), "load_avg_1m_start": os.getloadavg()[0], "splits": {}}
    t0 = time.perf_counter()
    for split in [s for s in a.splits.split(",") if s]:
        rows = load_rows(data, split=split, subset="general")[: a.n]
        if len(rows) < 2:
            print(f"{split}: {len(rows)} rows, skipped", flush=True)
            continue
        res: dict[str, Any] = {}
        for name, keys in CONDITIONS.items():
            res[name] = score_rows(b.model, b.vocab, enc, swapped(rows, keys, a.shift), head=a.head,
                                   free_running=("greedy", "sample") if name == "true" else ())
            print(split, name, json.dumps(res[name]), flush=True)
        res["text_use_ce_at_changes"] = round(res["other_text"]["ce_at_changes"] - res["true"]["ce_at_changes"], 4)
        res["speaker_use_ce_at_changes"] = round(res["other_speaker"]["ce_at_changes"] - res["true"]["ce_at_changes"], 4)
        out["splits"][split] = res
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    write_result(out, f"lm_text_use_{a.tag}")
    return out


if __name__ == "__main__":
    main()
