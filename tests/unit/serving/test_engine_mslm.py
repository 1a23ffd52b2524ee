"""TranslationEngine on a tiny random-init MSLM-S2ST model (issue 20): the two-stage program (source
linguistic -> target linguistic -> semantic), each stage inside its family and bounds, speech decoded
with the source speaker tokens, no text; the bundle's recipe selects it through ``TranslationEngine.load``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model as tm  # noqa: E402

from serving.engine import SEMANTIC_RATE_HZ, SPEED_WINDOW, ModelLoadError, TranslationEngine  # noqa: E402
from serving.mslm import generation_program, span_bounds, translation_program  # noqa: E402
from uniss.mslm import build_mslm_prompt  # noqa: E402


class RecordingCodec(tm.ToyCodec):
    """The toy codec, remembering the speaker codes every decode call got."""

    def __init__(self) -> None:
        self.decoded_with: list[np.ndarray] = []

    def decode(self, speaker, semantic):
        self.decoded_with.append(np.asarray(speaker).copy())
        return super().decode(speaker, semantic)


def _engine(runtime: str = "continuous") -> TranslationEngine:
    model, tok, vocab, _ = tm.build_tiny(0)
    return TranslationEngine(model, tok, vocab, RecordingCodec(), meta={"recipe": "mslm"}, runtime=runtime)


@pytest.fixture(scope="module")
def wavs() -> list[np.ndarray]:
    return [tm.tone(1.0, 220), tm.tone(0.6, 330), tm.tone(1.4, 150)]


def _inside(vocab, ids: list[int], family: str, end: str, bounds: tuple[int, int]) -> int:
    """Assert ``ids`` = ``family* end <|im_end|>`` with the span length in ``[min_len, budget]``; the span length."""
    a, z = vocab.range(family)
    assert ids[-2:] == [vocab.token_id(end), vocab.eos_id], ids[-3:]
    span = ids[:-2]
    assert all(a <= t < z for t in span), f"a token outside the {family} family"
    budget, min_len = bounds
    assert min_len <= len(span) <= budget
    return len(span)


@pytest.mark.parametrize("runtime", ["continuous", "hf"])
def test_two_stage_program_stays_in_family_and_bounds(wavs, runtime):
    eng = _engine(runtime)
    v = eng.vocab
    res = eng.translate(wavs, target_language=["zh", "en", "zh"], seed=1, require_speech=False)
    stage1, stage2 = eng.last_stages
    for k, r in enumerate(res):
        src_s = wavs[k].shape[0] / 16000
        n_l = _inside(v, stage1[k], "linguistic", "<|end_glm_token|>", span_bounds(12.5 * src_s, SPEED_WINDOW))
        n_s = _inside(v, stage2[k], "semantic", "<|end_semantic_token|>", span_bounds(4 * n_l, SPEED_WINDOW))
        assert r.complete and r.reason is None
        assert r.source_text is None and r.target_text is None  # textless
        assert r.semantic.tolist() == [t - v.range("semantic")[0] for t in stage2[k][:-2]]
        assert r.wav.dtype == np.float32 and r.wav.shape[0] == 320 * n_s  # toy codec: 320 samples per token
        assert r.output_tokens == len(stage1[k]) + len(stage2[k])
        np.testing.assert_array_equal(eng.codec.decoded_with[k], eng.codec.speaker(wavs[k]))  # the source voice


def test_stage_two_prompt_is_built_from_stage_one_units(wavs):
    """Greedy: stage 2's prompt is the generation prompt of stage 1's units and the source speaker, so
    decoding it alone reproduces the stage-2 output."""
    from serving.decoder import ContinuousDecoder, DecodeRequest

    eng = _engine()
    v = eng.vocab
    (r,) = eng.translate([wavs[0]], target_language="en", do_sample=False, require_speech=False)
    stage1, stage2 = eng.last_stages
    units = np.asarray(stage1[0][:-2]) - v.range("linguistic")[0]
    prompt = v.encode(build_mslm_prompt(v, "mslm_generate", tgt="en", speaker=eng.codec.speaker(wavs[0]), linguistic=units),
                      eng._encode_text)
    prog = generation_program(v, len(units), window=SPEED_WINDOW, semantic_rate_hz=SEMANTIC_RATE_HZ)
    req = DecodeRequest(prompt, prog, 10_000, do_sample=False)
    ContinuousDecoder(eng.model, v, eng.text_exclude).run([req])
    assert req.tokens == stage2[0]
    assert r.complete


def test_greedy_batch_equals_one_by_one(wavs):
    eng = _engine()
    batch = eng.translate(wavs, target_language="zh", do_sample=False, require_speech=False)
    for k, w in enumerate(wavs):
        (one,) = eng.translate([w], target_language="zh", do_sample=False, require_speech=False)
        assert one.semantic.tolist() == batch[k].semantic.tolist()


def test_speed_and_duration_cap_size_the_spans():
    v = tm.build_tiny(0)[2]
    end_glm = v.token_id("<|end_glm_token|>")
    assert translation_program(v, 2.0, 1.0, window=(0.85, 1.15)) == [("span", "linguistic", end_glm, 29, 21), ("force", v.eos_id)]
    assert translation_program(v, 2.0, 0.5, window=(0.85, 1.15))[0][3:] == (15, 10)
    assert translation_program(v, 2.0, 1.0, window=(0.85, 1.15), max_duration_s=1.0)[0][3:] == (12, 12)
    assert generation_program(v, 10, window=(0.85, 1.15), semantic_rate_hz=50.0)[0][3:] == (46, 34)
    assert generation_program(v, 0, window=(0.85, 1.15), semantic_rate_hz=50.0)[0][3:] == (5, 3)  # at least one unit's worth


def test_max_new_tokens_truncates_and_reports(wavs):
    eng = _engine()
    (r,) = eng.translate([wavs[0]], target_language="zh", max_new_tokens=3, seed=0, require_speech=False)
    assert not r.complete and "translation: missing <|end_glm_token|>" in r.reason
    assert all(len(s[0]) <= 3 for s in eng.last_stages)


def test_recipe_comes_from_the_bundle(tmp_path, monkeypatch):
    from uniss.bundle import save_bundle

    model, tok, vocab, codec = tm.build_tiny(0)
    cdir = tmp_path / "codec"
    cdir.mkdir()
    (cdir / "manifest.json").write_text("{}")
    save_bundle(tmp_path / "b", model=model, tokenizer=tok, vocab=vocab, codec_dir=cdir, meta={"recipe": "mslm", "phase": 1})
    monkeypatch.setattr("uniss.codecs.load_codec", lambda d: tm.ToyCodec())
    eng = TranslationEngine.load(tmp_path / "b")
    assert eng.recipe == "mslm" and eng.meta["recipe"] == "mslm"
    (r,) = eng.translate([tm.tone(0.8)], target_language="en", seed=0, require_speech=False)
    assert r.complete and r.semantic.size and r.target_text is None
    assert TranslationEngine(model, tok, vocab, codec, meta={}).recipe == "uniss"  # bundles of before
    with pytest.raises(ModelLoadError, match="recipe 'nope'"):
        TranslationEngine(model, tok, vocab, codec, meta={"recipe": "nope"})
