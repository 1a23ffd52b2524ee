"""Inference of the S2ST-Omni recipe (issue 20; arXiv 2506.11160 §2), for
:meth:`serving.engine.TranslationEngine.translate` on a bundle whose ``recipe`` is ``s2st-omni``.

Per source utterance:

1. frozen Whisper-base states ``(T_f, 512)`` at 12.5 Hz (``uniss.omni.speech_features``, the
   encoder the training packs were made with) -> adapter frames ``(P, k * 512)``;
2. S2TT: the prompt of ``uniss.omni.build_omni_prompt`` with the adapter outputs spliced into the
   placeholder embeddings (:func:`s2tt_decode`), decoded with a KV cache under a text-only
   constraint: text ids (never the text tokenizer's specials) until ``<|end_content|>``, then
   ``<|im_end|>`` forced; at most the engine's text budget (``serving.engine.token_budgets``,
   8 tok/s x 1.5 of source speech, >= 16), at least one text token;
3. TTS of the translation in the target language with the platform's TTS engine (Kokoro-82M by
   default, ``uniss.engines.kokoro``; paper §2.4 uses CosyVoice2 with the source speaker's prompt)
   in the voice nearest to the source speaker (:class:`VoiceMatcher`).

Voice rule. UniST synthesis keeps the source voice when the TTS engine speaks it in the target
language (``uniss.unist.synthesize.preserving_voice_map``); at inference the source is a waveform, not
a voice name, so the engine picks the TTS voice whose reference utterance has the highest cosine
similarity of resemblyzer speaker embeddings (``uniss.engines.speaker``, the platform's speaker
similarity) to the source. A source spoken by one of the engine's own voices gets that voice back
(the UniST rule); any other speaker gets the nearest voice. Reference utterances are one fixed
sentence per language (:data:`REFERENCE_TEXT`), synthesized once per voice and language and kept for
the engine's life.

Decoding runs one row at a time (HF ``past_key_values``): a decoder-only S2TT pass over a few
seconds of speech is short, and the shared continuous decoder works on token ids, not embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from uniss.omni import PLACEHOLDER_TOKEN, SpeechAdapter, splice_adapter
from uniss.vocab import SpeechVocab

__all__ = ["REFERENCE_TEXT", "VoiceMatcher", "s2tt_decode", "text_budget"]

#: Reference sentence each TTS voice speaks once per language, to place the voice in speaker-embedding
#: space (about 2-2.5 s of speech: resemblyzer embeds 1.6 s partial windows; the English one follows
#: the opening of the Speech Accent Archive's elicitation paragraph). Short, because every candidate
#: voice synthesizes it once (Kokoro: ~1.6 CPU s per second of audio on the loaded 2-core machine).
REFERENCE_TEXT = {
    "en": "Please call Stella and ask her to come.",
    "zh": "请你今天下午带些东西回家。",
}
#: Text tokens per second of source speech and head-room (``serving.engine`` TEXT_TOKENS_PER_S,
#: TEXT_MARGIN, MIN_TEXT_TOKENS; repeated here because serving.engine imports this module).
_TEXT_TOKENS_PER_S, _TEXT_MARGIN, _MIN_TEXT_TOKENS = 8.0, 1.5, 16


def text_budget(source_duration_s: float) -> int:
    """Most text tokens of one translation: ``max(16, ceil(8 tok/s x source_s x 1.5))`` (the engine's
    text-span budget, ``serving.engine.token_budgets``)."""
    return max(_MIN_TEXT_TOKENS, math.ceil(_TEXT_TOKENS_PER_S * float(source_duration_s) * _TEXT_MARGIN))


def s2tt_decode(
    model: Any,
    adapter: SpeechAdapter,
    vocab: SpeechVocab,
    prompts: Sequence[Sequence[int]],
    frames: Sequence[np.ndarray],
    *,
    budgets: Sequence[int],
    text_exclude: Sequence[int] = (),
    seeds: Sequence[int | None] | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
) -> list[list[int]]:
    """Constrained S2TT decoding with the adapter spliced into each prompt.

    Args:
        model: ``Qwen2ForCausalLM`` (eval mode) whose logits cover ``vocab.total``.
        adapter: the bundle's :class:`~uniss.omni.SpeechAdapter`.
        vocab: the token layout.
        prompts: ``B`` prompt id lists, each with ``P_i`` placeholders.
        frames: ``B`` arrays ``(P_i, k * 512)`` of adapter input frames.
        budgets: most text tokens per row (``<|end_content|>`` is forced when reached).
        text_exclude: text ids never allowed (pad, ``<|im_start|>``, ``<|im_end|>``, tokenizer specials).
        seeds: per-row sampler seeds (``None`` = unseeded).
        do_sample, temperature, top_p, repetition_penalty: sampling; ``do_sample=False`` = greedy.

    Returns:
        ``B`` lists of generated ids: text ids, ``<|end_content|>``, ``<|im_end|>``.

    Raises:
        OmniError: a row's placeholder count differs from its frames.
    """
    import torch

    end_c, eos = vocab.token_id("<|end_content|>"), vocab.eos_id
    ph = vocab.token_id(PLACEHOLDER_TOKEN)
    n_logits = int(model.get_output_embeddings().weight.shape[0])
    allowed = torch.zeros(n_logits, dtype=torch.bool)  # (V,)
    allowed[: vocab.text_size] = True
    allowed[list(text_exclude)] = False
    seeds = list(seeds) if seeds is not None else [None] * len(prompts)
    dev = next(model.parameters()).device
    out_rows: list[list[int]] = []
    with torch.inference_mode():
        for i, (p, f) in enumerate(zip(prompts, frames, strict=True)):
            gen = torch.Generator().manual_seed(int(seeds[i])) if seeds[i] is not None else None
            ids = torch.tensor([list(p)], dtype=torch.long, device=dev)  # (1, T)
            emb = model.get_input_embeddings()(ids)  # (1, T, H)
            x = splice_adapter(emb, ids, ph, adapter(torch.from_numpy(np.asarray(f, dtype=np.float32)).to(dev)))  # (1, T, H)
            out = model(inputs_embeds=x, use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1].float().cpu()  # (V,)
            row: list[int] = []
            while True:
                if len(row) >= int(budgets[i]):
                    tok = end_c
                else:
                    mask = allowed.clone()
                    mask[end_c] = len(row) > 0  # at least one text token
                    tok = _choose(logits, mask, row, gen, do_sample, temperature, top_p, repetition_penalty)
                row.append(tok)
                if tok == end_c:
                    row.append(eos)
                    break
                out = model(input_ids=torch.tensor([[tok]], device=dev), past_key_values=past, use_cache=True)
                past, logits = out.past_key_values, out.logits[0, -1].float().cpu()
            out_rows.append(row)
    return out_rows


def _choose(logits, mask, seen: list[int], gen, do_sample: bool, temperature: float, top_p: float, rep: float) -> int:
    """One token from ``logits`` ``(V,)`` restricted to ``mask``: greedy, or temperature + top-p
    sampling; the repetition penalty (CTRL, as ``transformers``) divides positive / multiplies
    negative logits of tokens already generated."""
    import torch

    x = logits.clone()
    if rep != 1.0 and seen:
        idx = torch.tensor(sorted(set(seen)))
        v = x[idx]
        x[idx] = torch.where(v > 0, v / rep, v * rep)
    x[~mask] = float("-inf")
    if not do_sample:
        return int(torch.argmax(x))
    probs = torch.softmax(x / temperature, dim=-1)
    order = torch.argsort(probs, descending=True)
    cum = torch.cumsum(probs[order], dim=-1)
    keep = order[: int((cum < top_p).sum()) + 1]
    p = probs[keep] / probs[keep].sum()
    return int(keep[torch.multinomial(p, 1, generator=gen)])


class VoiceMatcher:
    """Picks the TTS voice for a source speaker and speaks the translation with it (module
    docstring, "Voice rule").

    Args:
        tts: a ``uniss.engines.tts.TTSEngine`` (``voices(lang)``, ``synthesize(text, lang, voice)``
            -> ``(N,)`` float32 16 kHz).
        voices: candidate voices per language (default: every ``tts.voices(lang)``).
        embedder: speaker encoder with ``embed_batch(wavs) -> (n, 256)`` unit vectors (default the
            platform's resemblyzer encoder, ``uniss.engines.speaker.speaker_encoder``).

    Raises:
        TTSError: a language without candidate voices (at first use).
    """

    def __init__(self, tts: Any, *, voices: Mapping[str, Sequence[str]] | None = None, embedder: Any | None = None) -> None:
        self.tts = tts
        self._voices = {k: list(v) for k, v in (voices or {}).items()}
        self._embedder = embedder
        self._refs: dict[str, tuple[list[str], np.ndarray]] = {}

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from uniss.engines.speaker import speaker_encoder

            self._embedder = speaker_encoder()
        return self._embedder

    def voices(self, language: str) -> list[str]:
        """Candidate voices of ``language``."""
        return self._voices.get(language) or list(self.tts.voices(language))

    def references(self, language: str) -> tuple[list[str], np.ndarray]:
        """``(voices, (V, 256) embeddings)`` of each candidate voice speaking :data:`REFERENCE_TEXT`
        (computed once per language)."""
        from uniss.engines.tts import TTSError

        if language not in self._refs:
            names = self.voices(language)
            if not names:
                raise TTSError(f"the TTS engine has no voice for {language!r}")
            wavs = [self.tts.synthesize(REFERENCE_TEXT[language], language, v) for v in names]
            self._refs[language] = (names, np.asarray(self.embedder.embed_batch(wavs), dtype=np.float32))
        return self._refs[language]

    def pick(self, wav: np.ndarray, language: str) -> tuple[str, float]:
        """The candidate voice of ``language`` nearest to the speaker of ``wav`` ``(N,)`` float32 16 kHz.

        Returns:
            ``(voice, cosine similarity)``.
        """
        names, ref = self.references(language)
        e = np.asarray(self.embedder.embed_batch([wav])[0], dtype=np.float32)  # (256,)
        sims = ref @ e / (np.linalg.norm(ref, axis=1) * np.linalg.norm(e) + 1e-9)  # (V,)
        j = int(np.argmax(sims))
        return names[j], float(sims[j])

    def speak(self, text: str, language: str, voice: str) -> np.ndarray:
        """``text`` in ``language`` with ``voice``: ``(M,)`` float32 16 kHz.

        Raises:
            TTSError: the engine cannot speak it (empty, too long, unpronounceable text).
        """
        return np.asarray(self.tts.synthesize(text, language, voice), dtype=np.float32).reshape(-1)
