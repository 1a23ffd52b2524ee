"""uniss.metrics against hand-computed values (paper App. C.1 normalisation, SacreBLEU zh tokenisation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uniss import metrics as M


# --- normalisation -----------------------------------------------------------------------------


def test_english_normalisation_lowercases_and_keeps_apostrophes():
    assert M.normalize_for_bleu("Don't STOP, now! It\u2019s well-known.", "en") == "don't stop now it's well known"
    # quotes around a word are punctuation, not apostrophes
    assert M.normalize_for_bleu("'Hello' he said.", "en") == "hello he said"


def test_chinese_normalisation_simplifies_and_removes_punctuation():
    assert M.normalize_for_bleu("我們的國家，很大！", "zh") == "我们的国家 很大"
    assert M.normalize_for_bleu("「說話」。", "zh") == "说话"
    # full-width digits are folded (NFKC)
    assert M.normalize_for_bleu("１２３。", "zh") == "123"


def test_unknown_language_is_a_typed_error():
    with pytest.raises(M.MetricsError):
        M.normalize_for_bleu("x", "fr")
    with pytest.raises(M.MetricsError):
        M.corpus_bleu(["x"], ["x"], "de")


# --- BLEU -----------------------------------------------------------------------------------------


def test_english_bleu_hand_computed_brevity_penalty():
    # all n-gram precisions 100 %, hyp 5 tokens, ref 6 -> BLEU = 100 * exp(1 - 6/5)
    r = M.corpus_bleu(["A b, c d e."], ["a b c d e f"], "en")
    assert r.score == pytest.approx(100 * math.exp(1 - 6 / 5), abs=1e-6)
    assert r.sys_len == 5 and r.ref_len == 6
    assert "tok:13a" in r.signature and "nrefs:1" in r.signature


def test_chinese_bleu_uses_zh_tokenisation_and_simplified_conversion():
    # traditional + punctuation hypothesis; after t2s + punctuation removal: 5 chars vs 7 reference chars,
    # every n-gram matches -> BLEU = 100 * exp(1 - 7/5)
    r = M.corpus_bleu(["我們的國家！"], ["我们的国家很大。"], "zh")
    assert r.score == pytest.approx(100 * math.exp(1 - 7 / 5), abs=1e-6)
    assert r.sys_len == 5 and r.ref_len == 7  # one token per CJK character
    assert "tok:zh" in r.signature
    # identical after normalisation -> 100
    assert M.corpus_bleu(["我們的國家很大。"], ["我们的国家很大"], "zh").score == pytest.approx(100.0)


def test_chinese_bleu_is_zero_without_overlap_and_counts_empty_outputs():
    r = M.corpus_bleu(["", "你好世界"], ["我们的国家很大", "你好世界"], "zh")
    # corpus: hyp 4 chars, ref 11 chars; all hyp n-grams match -> precisions 100, BP = exp(1 - 11/4)
    assert r.score == pytest.approx(100 * math.exp(1 - 11 / 4), abs=1e-6)
    assert M.corpus_bleu(["天气"], ["我们的国家很大"], "zh").score == pytest.approx(0.0)


def test_bleu_length_mismatch_and_empty_corpus():
    with pytest.raises(M.MetricsError):
        M.corpus_bleu(["a"], ["a", "b"], "en")
    with pytest.raises(M.MetricsError):
        M.corpus_bleu([], [], "en")


# --- WER / CER -----------------------------------------------------------------------------------


def test_wer_hand_computed():
    # one substitution (sat->sit) + one deletion (the) over 6 reference words
    assert M.error_rate(["The cat sat on the mat."], ["the cat sit on mat"], "en") == pytest.approx(2 / 6)
    # corpus aggregation: (2 + 0) edits / (6 + 2) words
    assert M.error_rate(["the cat sat on the mat", "hello world"], ["the cat sit on mat", "Hello, world!"], "en") == pytest.approx(2 / 8)


def test_cer_hand_computed_with_simplification():
    # traditional hypothesis matches after t2s: 0 errors
    assert M.error_rate(["我们的国家"], ["我們的國家。"], "zh") == 0.0
    # 我们的国家 vs 我们国家家: 2 edits over 5 characters
    assert M.error_rate(["我们的国家"], ["我们国家家"], "zh") == pytest.approx(2 / 5)


def test_error_rate_with_empty_reference():
    assert M.error_rate(["", "a b"], ["x", "a b"], "en") == pytest.approx(1 / 2)
    assert M.error_rate([""], [""], "en") == 0.0


# --- SLC, speaker similarity, RTF ----------------------------------------------------------------


def test_slc_hand_computed_including_interval_edges():
    src = [2.5, 1.0, 1.0, 1.0, 1.0]
    out = [3.0, 0.8, 1.3, 0.5, 1.0]  # ratios 1.2 (edge), 0.8 (edge), 1.3, 0.5, 1.0
    assert M.slc(src, out, 0.2) == pytest.approx(3 / 5)
    assert M.slc(src, out, 0.4) == pytest.approx(4 / 5)


def test_slc_counts_missing_speech_as_a_miss_and_rejects_bad_durations():
    assert M.slc([1.0, 1.0], [0.0, 1.0], 0.2) == pytest.approx(0.5)
    with pytest.raises(M.MetricsError):
        M.slc([0.0], [1.0], 0.2)
    with pytest.raises(M.MetricsError):
        M.slc([1.0], [1.0, 2.0], 0.2)
    with pytest.raises(M.MetricsError):
        M.slc([1.0], [1.0], 0.0)


def test_speaker_similarity_uses_the_embedding_and_keeps_empty_outputs_as_nan():
    def embed(w: np.ndarray) -> np.ndarray:  # a 2-D "embedding": (mean, std) of the clip
        return np.array([w.mean(), w.std()], dtype=np.float32)

    a = np.array([1.0, 1.0, 1.0, 1.0], dtype=np.float32)  # (1, 0)
    b = np.array([0.0, 2.0, 0.0, 2.0], dtype=np.float32)  # (1, 1)
    sims = M.speaker_similarities([a, a], [b, np.zeros(0, np.float32)], embed)
    assert sims[0] == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    assert math.isnan(sims[1])
    assert M.mean_finite(sims) == pytest.approx(1 / math.sqrt(2), abs=1e-6)


def test_rtf():
    assert M.real_time_factor([1.0, 2.0], [3.0, 3.0]) == pytest.approx(0.5)
    with pytest.raises(M.MetricsError):
        M.real_time_factor(1.0, 0.0)


# --- grouping -------------------------------------------------------------------------------------


def _utt(i: int, out_text: str, asr: str, ref: str, out_s: float, mode: str = "quality") -> M.UtteranceResult:
    return M.UtteranceResult(
        id=f"u{i}", direction="en-zh", mode=mode, src_lang="en", tgt_lang="zh", src_text="x",
        ref_text=ref, output_text=out_text, output_asr=asr, source_duration_s=2.0,
        output_duration_s=out_s, processing_s=1.0, speaker_sim=0.5 + 0.1 * i,
    )


def test_score_group_hand_computed():
    res = [
        _utt(0, "我们的国家很大", "我們的國家很大。", "我们的国家很大", 2.2),
        _utt(1, "你好世界", "", "你好世界", 0.0),
    ]
    s = M.score_group(res)
    assert s.n == 2
    assert s.text_bleu == pytest.approx(100.0)
    # speech: hyp 7 chars (all matching) vs ref 11 chars -> BP = exp(1 - 11/7)
    assert s.speech_bleu == pytest.approx(100 * math.exp(1 - 11 / 7), abs=1e-6)
    assert s.speech_error_rate == pytest.approx(4 / 11)
    assert s.slc_02 == pytest.approx(0.5) and s.slc_04 == pytest.approx(0.5)
    assert s.speaker_sim == pytest.approx(0.55)
    assert s.rtf == pytest.approx(0.5)
    assert res[1].speech_error_rate == pytest.approx(1.0)
    m = s.metrics()
    assert set(M.TABLE1_METRICS) <= set(m)


def test_score_group_direct_mode_has_no_text_bleu():
    s = M.score_group([_utt(0, "", "你好", "你好", 2.0, mode="direct")])
    assert math.isnan(s.text_bleu) and s.text_signature == ""
    assert s.speech_bleu == pytest.approx(0.0)  # two characters: no 3/4-grams -> 0 without smoothing floor
    with pytest.raises(M.MetricsError):
        M.score_group([_utt(0, "", "", "a", 1.0), _utt(1, "", "", "a", 1.0, mode="direct")])


def test_metric_keys_round_trip():
    k = M.metric_key("slc_0.2", "en-zh", "quality")
    assert k == "slc_0.2.en-zh.quality"
    assert M.parse_metric_key(k) == ("slc_0.2", "en-zh", "quality")
    with pytest.raises(M.MetricsError):
        M.parse_metric_key("speech_bleu")


class _ToyASR:
    """A deterministic 'ASR' that reports the clip length, and garbles clips shorter than the
    longest clip of a batch when it ignores padding (what missing attention masks look like)."""

    def __init__(self, masks: bool):
        self.masks = masks

    def transcribe(self, wavs, language):
        longest = max(len(w) for w in wavs)
        return [f"len {len(w) if self.masks else longest}" for w in wavs]


def test_asr_batch_agreement_detects_padding_bugs():
    wavs = [np.zeros(n, np.float32) for n in (10, 20, 30)]
    ok = M.asr_batch_agreement(_ToyASR(masks=True), wavs, "en")
    assert ok.exact == 1.0 and ok.error_rate == 0.0
    bad = M.asr_batch_agreement(_ToyASR(masks=False), wavs, "en")
    assert bad.exact == pytest.approx(1 / 3)
    assert bad.error_rate == pytest.approx(2 / 6)


# ---------------------------------------------------------------- paired bootstrap (uniss compare)
_REFS = ["the cat sat on the mat", "a dog ran home", "hello world out there", "it is raining today", "we like white rice"] * 4
_BASE = ["the cat sat on mat", "a dog ran", "hello world", "it rains today", "we like rice"] * 4


def test_paired_bootstrap_scores_are_the_corpus_bleu_and_a_clear_loss_is_significant():
    worse = ["cat", "dog", "hello", "rain", "rice"] * 4
    r = M.paired_bootstrap_bleu(_BASE, worse, _REFS, "en")
    assert r.base == pytest.approx(M.corpus_bleu(_BASE, _REFS, "en").score)
    assert r.other == pytest.approx(M.corpus_bleu(worse, _REFS, "en").score)
    assert r.delta == pytest.approx(r.other - r.base) and r.delta < 0
    assert r.p_value < 0.01 and r.n == 20 and r.n_samples == 1000 and "bs:1000" in r.signature
    assert M.paired_bootstrap_bleu(_BASE, worse, _REFS, "en") == r  # seeded: reproducible


def test_paired_bootstrap_one_sentence_changed_is_not_significant_and_equal_scores_give_p_one():
    one = list(_BASE)
    one[3] = "it is raining"
    r = M.paired_bootstrap_bleu(_BASE, one, _REFS, "en")
    assert r.delta > 0 and r.p_value > 0.05
    assert M.paired_bootstrap_bleu(_BASE, list(_BASE), _REFS, "en").p_value == 1.0


def test_paired_bootstrap_normalises_like_corpus_bleu_and_rejects_bad_input():
    refs = ["我们的邻居每天早上卖白米。", "他喜欢红苹果"]
    r = M.paired_bootstrap_bleu(["我們的鄰居每天早上賣白米", "他喜欢苹果"], ["我们的邻居", "他喜欢红苹果!"], refs, "zh")
    assert r.base == pytest.approx(M.corpus_bleu(["我們的鄰居每天早上賣白米", "他喜欢苹果"], refs, "zh").score)
    assert "tok:zh" in r.signature
    with pytest.raises(M.MetricsError):
        M.paired_bootstrap_bleu(["a"], ["a", "b"], ["a"], "en")
    with pytest.raises(M.MetricsError):
        M.paired_bootstrap_bleu(["a"], ["a"], ["a"], "fr")
    with pytest.raises(M.MetricsError, match="n_samples"):
        M.paired_bootstrap_bleu(["a"], ["a"], ["a"], "en", n_samples=10)
