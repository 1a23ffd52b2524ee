"""TranslationEngine on a tiny random-init S2ST-Omni bundle (issue 20): ``load`` picks the recipe from
bundle.json and loads the adapter (no codec); S2TT decoding stays text-only and matches an uncached
recomputation; the translation is spoken by the platform's TTS (Kokoro-82M) in the voice nearest to
the source speaker."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model as tm  # noqa: E402

from serving.engine import ModelLoadError, TranslationEngine  # noqa: E402
from serving.omni import VoiceMatcher, s2tt_decode, text_budget  # noqa: E402
from uniss.bundle import save_bundle  # noqa: E402
from uniss.omni import FEATURE_DIM, PLACEHOLDER_TOKEN, AdapterConfig, SpeechAdapter, save_adapter, splice_adapter  # noqa: E402

VOICES = ["kokoro:jf_alpha", "kokoro:jm_kumo"]  # a female and the male Kokoro base voice


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    model, tok, vocab, _ = tm.build_tiny(0)
    out = tmp_path_factory.mktemp("omni") / "bundle"
    save_bundle(out, model=model, tokenizer=tok, vocab=vocab, meta={"recipe": "s2st-omni", "phase": 2})
    torch.manual_seed(0)
    save_adapter(SpeechAdapter(AdapterConfig(out_dim=model.config.hidden_size)), out / "adapter")
    return out


def _teach(bundle: Path, src: np.ndarray, text: str, steps: int = 60) -> None:
    """Fit the bundle's LM + adapter to one S2TT sample (``src`` -> ``text`` in English) with a few
    AdamW steps, so the engine's output is a known, pronounceable sentence instead of a random
    model's byte fragments. Loss only on ``text<|end_content|><|im_end|>``, as in training/omni.py."""
    from uniss.bundle import load_bundle
    from uniss.omni import adapter_inputs, build_omni_continuation, build_omni_prompt, load_adapter, speech_features

    b = load_bundle(bundle, with_codec=False)
    ad = load_adapter(bundle / "adapter")
    m, v = b.model.train(), b.vocab
    enc = lambda s: b.tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    f = torch.from_numpy(adapter_inputs(speech_features([src])[0], ad.cfg))
    p = v.encode(build_omni_prompt(v, tgt="en", n_frames=f.shape[0]), enc)
    c = v.encode(build_omni_continuation(v, translation=text), enc)
    ids, labels = torch.tensor([p + c]), torch.tensor([[-100] * len(p) + c])
    opt = torch.optim.AdamW([*m.parameters(), *ad.parameters()], lr=3e-3)
    torch.manual_seed(0)
    for _ in range(steps):
        x = splice_adapter(m.get_input_embeddings()(ids), ids, v.token_id(PLACEHOLDER_TOKEN), ad(f))
        loss = m(inputs_embeds=x, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.05
    save_bundle(bundle, model=m.eval(), tokenizer=b.tokenizer, vocab=v, meta={"recipe": "s2st-omni", "phase": 2})
    save_adapter(ad, bundle / "adapter")


@pytest.fixture(scope="module")
def kokoro():
    from uniss.engines.kokoro import KokoroTTS

    try:
        return KokoroTTS(threads=2)
    except Exception as e:  # noqa: BLE001 - the model is installed by `make setup`
        pytest.skip(f"Kokoro-82M not installed: {e}")


def test_load_picks_the_recipe_and_needs_the_adapter(bundle, tmp_path):
    eng = TranslationEngine.load(bundle)
    assert eng.recipe == "s2st-omni" and eng.codec is None and eng.adapter.cfg.out_dim == eng.model.config.hidden_size
    import shutil

    broken = tmp_path / "b"
    shutil.copytree(bundle, broken)
    shutil.rmtree(broken / "adapter")
    with pytest.raises(ModelLoadError, match="adapter"):
        TranslationEngine.load(broken)
    with pytest.raises(ModelLoadError, match="adapter"):
        TranslationEngine(eng.model, eng.tokenizer, eng.vocab, None, meta={"recipe": "s2st-omni"})


def test_s2tt_decode_is_text_only_and_matches_an_uncached_recomputation(bundle):
    eng = TranslationEngine.load(bundle)
    v, m, a = eng.vocab, eng.model, eng.adapter
    from uniss.omni import build_omni_prompt

    rng = np.random.default_rng(0)
    frames = [rng.normal(size=(n, 2 * FEATURE_DIM)).astype(np.float32) for n in (3, 7)]
    prompts = [v.encode(build_omni_prompt(v, tgt=t, n_frames=f.shape[0]), eng._encode_text) for t, f in zip(("en", "zh"), frames)]
    rows = s2tt_decode(m, a, v, prompts, frames, budgets=[5, 40], text_exclude=eng.text_exclude)
    end_c, ph = v.token_id("<|end_content|>"), v.token_id(PLACEHOLDER_TOKEN)
    for p, f, r, budget in zip(prompts, frames, rows, (5, 40)):
        assert r[-2:] == [end_c, v.eos_id] and 1 <= len(r) - 2 <= budget
        assert all(t < v.text_size and t not in eng.text_exclude for t in r[:-2])
        # greedy under the text mask, recomputed without the KV cache from the full sequence
        ids = torch.tensor([p + r[:-1]])
        with torch.no_grad():
            x = splice_adapter(m.get_input_embeddings()(ids), ids, ph, a(torch.from_numpy(f)))
            logits = m(inputs_embeds=x).logits[0, len(p) - 1 :].clone()  # (len(r) - 1, V)
        logits[:, v.text_size :] = float("-inf")
        logits[:, eng.text_exclude] = float("-inf")
        want = logits[:, : v.text_size].argmax(-1).tolist()
        free = len(r) - 2 if len(r) - 2 < budget else budget  # steps chosen by the model (not forced)
        assert r[:free] == want[:free]


def test_translate_speaks_the_translation_in_the_nearest_voice(bundle, kokoro, tmp_path):
    """The source is Kokoro's male voice speaking English; the bundle's model was fitted to write
    "hello world" for it. The engine must write that text, pick the male voice out of the two
    candidates and return exactly Kokoro's rendering of the text in it (16 kHz float32)."""
    import shutil

    src = kokoro.synthesize("Music plays in rooms.", "en", "kokoro:jm_kumo")
    taught = tmp_path / "taught"
    shutil.copytree(bundle, taught)
    _teach(taught, src, "hello world")
    eng = TranslationEngine.load(taught)
    eng.voices = VoiceMatcher(kokoro, voices={"en": VOICES, "zh": VOICES})
    (res,) = eng.translate([src], target_language="en", do_sample=False, require_speech=False)
    assert eng.voices.pick(src, "en")[0] == "kokoro:jm_kumo"
    assert res.complete, res.reason
    assert res.target_text == "hello world" and res.source_text is None
    assert 1 <= res.output_tokens - 2 <= text_budget(src.shape[0] / 16000)
    assert res.wav.dtype == np.float32 and res.wav.ndim == 1 and res.wav.shape[0] > 1600
    assert np.array_equal(res.wav, kokoro.synthesize(res.target_text, "en", "kokoro:jm_kumo"))
    assert abs(res.duration_s - res.wav.shape[0] / 16000) < 1e-9 and set(res.timings) == {"encode", "generate", "decode", "total"}


class _CountingTTS:
    """A TTS stand-in that records each synthesis (a tone per voice), to count reference renders."""

    def __init__(self):
        self.calls = []

    def voices(self, language):
        return ["a", "b", "c"]

    def synthesize(self, text, language, voice):
        self.calls.append((text, language, voice))
        return tm.tone(1.0, freq={"a": 120.0, "b": 220.0, "c": 320.0}[voice])


class _Embedder:
    def embed_batch(self, wavs):
        out = np.stack([np.abs(np.fft.rfft(w[:4000]))[:256] for w in wavs]).astype(np.float32)  # (n, 256)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_prepare_builds_the_voice_references_once_before_any_request(bundle):
    """``prepare`` renders each candidate voice's reference once per language (the one-time cost a first
    request would pay); later picks reuse them. Unknown languages are refused; codec recipes do nothing."""
    from serving.engine import EngineError

    tts = _CountingTTS()
    engine = TranslationEngine.load(bundle)
    engine.voices = VoiceMatcher(tts, embedder=_Embedder())
    engine.prepare(["en", "zh"])
    assert sorted(c[1:] for c in tts.calls) == [(lang, v) for lang in ("en", "zh") for v in ("a", "b", "c")]
    assert engine.voices.pick(tm.tone(1.0, freq=220.0), "en")[0] == "b"
    engine.prepare(["en"])
    assert len(tts.calls) == 6  # nothing rendered again
    with pytest.raises(EngineError, match="unknown target language"):
        engine.prepare(["fr"])
    tiny = tm.tiny_engine()
    tiny.prepare()  # uniss recipe: no-op, no TTS built
    assert tiny.voices is None
