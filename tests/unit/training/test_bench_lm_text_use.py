"""benchmarks/bench_lm_text_use.py: the text-swap measurement tells a model that reads the text from
one that continues its own unit history, on the synthetic corpus's TTS samples."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
import bench_lm_text_use as B  # noqa: E402


class _Fake:
    """A causal LM stand-in over the bundle vocabulary: ``(1, L)`` ids -> ``(1, L, V)`` logits.

    ``reads_text``: the logits at position ``i`` put all mass on the unit that the row whose text
    tokens the prompt holds has at ``i + 1`` (an oracle that reads the text). Otherwise: on the
    unit fed at ``i`` (copies its history; the first unit guesses 0)."""

    def __init__(self, vocab, table: dict[tuple[int, ...], tuple[np.ndarray, int]], reads_text: bool):
        self.vocab, self.table, self.reads_text = vocab, table, reads_text
        self.lo, self.hi = vocab.range("semantic")

    def _key(self, ids: np.ndarray) -> tuple[int, ...]:
        t_lo, t_hi = self.vocab.range("text")
        sem = np.where((ids >= self.lo) & (ids < self.hi))[0]
        prompt = ids[: sem[0]] if len(sem) else ids
        return tuple(int(x) for x in prompt if t_lo <= x < t_hi)

    def __call__(self, input_ids, past_key_values=None, use_cache=False):
        ids = input_ids[0].numpy() if past_key_values is None else np.r_[past_key_values, input_ids[0].numpy()]
        logits = torch.zeros(len(ids), self.vocab.total)
        truth, first = self.table[self._key(ids)]
        for i in range(len(ids)):
            if self.reads_text:
                j = i + 1 - first
                unit = int(truth[j]) if 0 <= j < len(truth) else 0
            else:
                unit = int(ids[i] - self.lo) if self.lo <= ids[i] < self.hi else 0
            logits[i, self.lo + unit] = 30.0
        n_new = input_ids.shape[1]
        return SimpleNamespace(logits=logits[-n_new:][None], past_key_values=ids)


def _table(vocab, enc, rows):
    table = {}
    for r in rows:
        ids, truth, pos = B.tts_case(vocab, enc, r)
        table[_Fake(vocab, {}, True)._key(ids)] = (truth, int(pos[0]))
    return table


@pytest.fixture()
def setting(toks, rows):
    text, _, vocab = toks
    enc = lambda s: text.encode(s, add_special_tokens=False)  # noqa: E731
    rows = [r for r in rows if len(r["tgt_semantic"])][:6]
    texts = {r["tgt_text"] for r in rows}
    assert len(rows) >= 3 and len(texts) == len(rows), "the test needs rows with distinct target texts"
    return vocab, enc, rows


def test_a_model_that_reads_the_text_loses_its_units_when_the_text_is_swapped(setting):
    vocab, enc, rows = setting
    oracle = _Fake(vocab, _table(vocab, enc, rows), reads_text=True)
    true = B.score_rows(oracle, vocab, enc, rows, free_running=("greedy", "sample"))
    assert true["n"] == len(rows) and true["acc"] == 1.0 and true["ce"] < 1e-3
    for rule in ("greedy", "sample"):  # a one-hot model samples what it argmaxes
        fr = true["free_running"][rule]
        assert fr["dedup_unit_error_rate"] == 0.0 and fr["runs_out_over_true"] == 1.0
    other = B.score_rows(oracle, vocab, enc, B.swapped(rows, B.CONDITIONS["other_text"], 1))
    assert other["acc"] < 0.9 and other["ce_at_changes"] > true["ce_at_changes"] + 1.0


def test_a_model_that_copies_its_history_does_not_notice_the_swap(setting):
    vocab, enc, rows = setting
    copier = _Fake(vocab, _table(vocab, enc, rows), reads_text=False)
    true = B.score_rows(copier, vocab, enc, rows, free_running=("greedy",))
    other = B.score_rows(copier, vocab, enc, B.swapped(rows, B.CONDITIONS["other_text"], 1))
    for k in ("acc", "ce", "acc_at_changes", "ce_at_changes"):
        assert other[k] == pytest.approx(true[k])
    assert true["acc_at_changes"] == 0.0  # a copier never predicts a change
    # free running from an all-zero guess repeats unit 0: one output run per clip, deletions
    fr = true["free_running"]["greedy"]
    assert fr["del_rate"] > 0.5 and fr["runs_out_over_true"] < 1.0
    with pytest.raises(ValueError, match="beam"):
        B.score_rows(copier, vocab, enc, rows, free_running=("beam",))


def test_unit_scores_and_run_errors_by_hand():
    truth = np.array([2, 2, 0, 1])
    logits = np.log(np.array([[.1, .1, .8], [.1, .1, .8], [.2, .7, .1], [.1, .8, .1]]))  # (4, 3)
    s = B.unit_scores(logits, truth, head=2)
    assert s["acc"] == 0.75 and s["acc_at_changes"] == 0.5 and s["acc_head"] == 1.0
    assert s["ce_at_changes"] == pytest.approx((-np.log(.2) - np.log(.8)) / 2)
    assert B.runs([5, 5, 7, 5]) == [5, 7, 5]
    e = B.run_errors([1, 1, 2, 2, 3], [1, 2, 2, 4])
    assert (e["sub"], e["del"], e["ins"], e["ref"], e["hyp"]) == (1, 0, 0, 3, 3)
    with pytest.raises(ValueError):
        B.run_errors([], [1])
    with pytest.raises(ValueError):
        B.swapped([{"a": 1}, {"a": 2}], ["a"], 2)
    assert B.swapped([{"a": 1, "b": 1}, {"a": 2, "b": 2}], ["a"], 1) == [{"a": 2, "b": 1}, {"a": 1, "b": 2}]
