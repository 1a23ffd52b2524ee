"""Speech recognition engines and the paper's ASR error metric.

Shape legend: ``N_i`` = samples of utterance i at 16 kHz; ``B`` = batch size; Whisper features are
``(B, 80, 3000)`` float32 log-mel frames (100 frames/s, every utterance padded to 30 s).

- :class:`WhisperASR`: Whisper-base (CTranslate2 int8) through faster-whisper
  (https://github.com/SYSTRAN/faster-whisper), from the local directory
  ``get_settings().whisper_dir`` only (``local_files_only``; never the hub). Language forced
  (``en``/``zh``), no timestamps, no conditioning on previous text. Batched decoding: each
  utterance gets its *own* log-mel features padded with silence to the 30 s window Whisper was
  trained on (exactly what unbatched Whisper does), then the ``B`` windows are encoded and decoded in
  one CTranslate2 ``generate`` call. No utterance ever attends to another's frames, so batching
  cannot leak padding into the result (the failure a public UniSS reproduction hit with masks, see
  ARCHITECTURE.md "Evaluation"); ``tests/unit/engines/test_asr.py`` cross-checks batch vs one-by-one.
  ``BatchedInferencePipeline`` is not used: it batches VAD chunks of *one* long recording, not a
  list of utterances. Utterances over 30 s go through faster-whisper's sequential long-form path.
  Chinese output is converted to simplified characters (OpenCC ``t2s``). A batched decode whose
  gzip compression ratio exceeds 2.4 (a repetition loop; Whisper's own threshold) is redone by
  faster-whisper's sequential path with its temperature fallback, as unbatched Whisper would.
  Optional *packing* (``pack_s > 0``, used by the UniST data filters, not by evaluation): Whisper
  pays a full 30 s encoder window per utterance however short it is, so consecutive short
  utterances are laid end to end with ``pack_gap_s`` of silence into windows of at most
  ``pack_s`` seconds, each window is one ``clip_timestamps`` chunk of faster-whisper's
  ``BatchedInferencePipeline`` (batched; segment timestamp tokens on, so segments break at the
  pauses, and ``word_timestamps=True``: cross-attention DTW word times inside each segment), and
  every word goes back to the utterance whose span, widened to the middle of the gaps, holds the
  word's midpoint. Without segment timestamps the DTW stretched words over the pauses and the first
  Chinese character of a clip landed in the previous one. An utterance that gets no word or a
  repetition loop is decoded again in its own window.
  ``benchmarks/bench_asr_pack.py`` measures the speed-up and the agreement with unpacked decoding.
- :class:`PocketsphinxASR`: CMU PocketSphinx (English model shipped in the ``pocketsphinx`` wheel).
- :func:`normalize_text` / :func:`error_rate`: the paper's App. C normalisation and WER (en) / CER
  (zh) with jiwer; delegated to :mod:`uniss.metrics` so evaluation and data filtering share one rule.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from uniss.audio import SAMPLE_RATE_HZ, check_waveform
from uniss.engines import EngineError, EngineUnavailableError, check_language
from uniss.metrics import to_simplified

#: gzip compression ratio above which a decode is a repetition loop (Whisper's
#: ``compression_ratio_threshold`` default, openai/whisper ``transcribe.py``); such an utterance is
#: decoded again by the sequential path with its temperature fallback.
COMPRESSION_RATIO_MAX = 2.4

#: Upper bound on text tokens per second of speech used to cap generation (fast speech is about
#: 4-6 words or Chinese characters per second, at most ~2 BPE tokens each); bounds repetition loops.
MAX_TOKENS_PER_S = 15.0

#: Whisper's fixed input window in seconds (Radford et al. 2022, §2.2: 30 s log-mel windows).
WHISPER_WINDOW_S = 30.0

#: Default silence between packed utterances (s): long enough that word times (DTW, about 0.1 s
#: error) never fall on the wrong side of the gap's middle.
PACK_GAP_S = 1.0


@runtime_checkable
class ASREngine(Protocol):
    """Speech recognition: ``B`` waveforms ``(N_i,)`` float32 16 kHz -> ``B`` transcripts."""

    def transcribe(self, wavs: list[np.ndarray], language: str) -> list[str]:
        """Transcribe each waveform in ``language`` (``en``/``zh``); one string per input."""
        ...


def _check_wavs(wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [check_waveform(w, what=f"ASR input {i}") for i, w in enumerate(wavs)]


def _whisper_text(text: str, language: str) -> str:
    """A transcript as Whisper tokenizes it: whitespace collapsed, English led by one space (the
    form :meth:`WhisperASR.align_words` aligns and :func:`whisper_words` splits)."""
    return (" " if language == "en" else "") + " ".join(str(text).split())


@lru_cache(maxsize=8)
def _whisper_tokenizer(model_dir: str, language: str) -> Any:
    import tokenizers
    from faster_whisper.tokenizer import Tokenizer

    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise EngineUnavailableError(f"Whisper tokenizer {path} is missing; run `make models` or set UNISS_MODELS_DIR")
    return Tokenizer(tokenizers.Tokenizer.from_file(str(path)), True, task="transcribe", language=language)


def whisper_words(text: str, language: str, model_dir: str | Path | None = None) -> list[str]:
    """Split a transcript into Whisper's words, as :meth:`WhisperASR.align_words` does: space-led
    pieces in English (punctuation a word of its own), characters or character groups that are one
    Whisper token in Chinese (``faster_whisper.tokenizer.Tokenizer.split_to_word_tokens``).
    ``"".join(words).strip()`` is the whitespace-collapsed text. Serving uses it to split a generated
    translation into the words of an interleaved speech span (``data.interleave_words``).

    Args:
        text: the transcript (may be empty).
        language: ``en`` or ``zh``.
        model_dir: Whisper CT2 directory (its ``tokenizer.json``); default the installed Whisper-base.

    Returns:
        The words, in order; ``[]`` for a blank text.

    Raises:
        UnknownLanguageError; EngineUnavailableError: no Whisper tokenizer installed.
    """
    check_language(language)
    if not str(text).strip():
        return []
    if model_dir is None:
        from uniss.settings import get_settings

        model_dir = get_settings().whisper_dir
    tok = _whisper_tokenizer(str(Path(model_dir).resolve()), language)
    words, _ = tok.split_to_word_tokens(tok.encode(_whisper_text(text, language)) + [tok.eot])
    return [w for w in words[:-1] if w]  # the last piece is <|endoftext|>


@lru_cache(maxsize=4)
def _load_whisper(model_dir: str, compute_type: str, cpu_threads: int, device: str) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(model_dir, device=device, compute_type=compute_type, cpu_threads=cpu_threads,
                        local_files_only=True)


class WhisperASR:
    """Whisper ASR over faster-whisper (CTranslate2) from a local model directory (Whisper-base on
    CPU by default; any CT2 Whisper, e.g. large-v3, by path).

    Args:
        model_dir: CTranslate2 Whisper directory (``model.bin``, ``config.json``, ``tokenizer.json``,
            ``vocabulary.json``); default ``uniss.settings.get_settings().whisper_dir``.
        beam_size: beam width (1 = greedy; the paper's evaluation numbers here use 1).
        compute_type: CTranslate2 compute type (``int8`` on CPU).
        batch_size: utterances per encoder/decoder call.
        cpu_threads: CTranslate2 intra-op threads (2 = this machine's cores; 0 = CTranslate2's default).
        max_new_tokens: cap on generated tokens per utterance (Whisper's text context is 448).
        device: CTranslate2 device, ``cpu`` (default) or ``cuda`` (GPU users pointing ``model_dir``
            at a local Whisper-large-v3 CT2 directory, with ``compute_type="float16"``).
        pack_s: pack consecutive utterances into windows of at most this many seconds (0 = off,
            one window per utterance; at most :data:`WHISPER_WINDOW_S`). See the module docstring.
        pack_gap_s: silence between packed utterances, seconds.
    Raises:
        EngineUnavailableError: model directory missing or not a Whisper CT2 model.
        EngineError: bad beam/batch size or packing window.
    The model is loaded once per (dir, compute_type, threads) and shared (cached).
    """

    def __init__(self, model_dir: str | Path | None = None, beam_size: int = 1, compute_type: str = "int8",
                 batch_size: int = 8, cpu_threads: int = 2, max_new_tokens: int = 200, device: str = "cpu",
                 pack_s: float = 0.0, pack_gap_s: float = PACK_GAP_S) -> None:
        if model_dir is None:
            from uniss.settings import get_settings

            model_dir = get_settings().whisper_dir
        self.model_dir = Path(model_dir)
        if beam_size < 1 or batch_size < 1:
            raise EngineError(f"beam_size and batch_size must be >= 1 (got {beam_size}, {batch_size})")
        if not 0.0 <= pack_s <= WHISPER_WINDOW_S or pack_gap_s < 0.0:
            raise EngineError(f"pack_s must be in [0, {WHISPER_WINDOW_S:g}] s and pack_gap_s >= 0 (got {pack_s}, {pack_gap_s})")
        missing = [f for f in ("model.bin", "config.json", "tokenizer.json") if not (self.model_dir / f).is_file()]
        if missing:
            raise EngineUnavailableError(
                f"Whisper model directory {self.model_dir} lacks {missing}; run `make models` "
                "(scripts/install_models.py) or set UNISS_MODELS_DIR")
        self.beam_size = int(beam_size)
        self.compute_type = compute_type
        self.batch_size = int(batch_size)
        self.cpu_threads = int(cpu_threads)
        self.max_new_tokens = int(max_new_tokens)
        self.device = device
        self.pack_s = float(pack_s)
        self.pack_gap_s = float(pack_gap_s)
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The shared ``faster_whisper.WhisperModel``."""
        try:
            return _load_whisper(str(self.model_dir.resolve()), self.compute_type, self.cpu_threads, self.device)
        except (RuntimeError, ValueError, OSError) as e:
            raise EngineUnavailableError(f"cannot load Whisper from {self.model_dir}: {e}") from None

    def _post(self, text: str, language: str) -> str:
        text = " ".join(text.split())
        return to_simplified(text) if language == "zh" else text

    def transcribe_one(self, wav: np.ndarray, language: str) -> str:
        """One utterance through faster-whisper's own sequential ``WhisperModel.transcribe``
        (long-form, any length; temperature fallback at the library defaults).

        Args: ``wav`` ``(N,)`` float32 16 kHz; ``language`` ``en``/``zh``.
        Raises: EngineError (bad input), UnknownLanguageError.
        """
        check_language(language)
        (x,) = _check_wavs([wav])
        with self._lock:
            segments, _ = self.model.transcribe(
                x, language=language, task="transcribe", beam_size=self.beam_size, without_timestamps=True,
                condition_on_previous_text=False, vad_filter=False)
            text = " ".join(s.text.strip() for s in segments)
        return self._post(text, language)

    def _generate(self, feats: np.ndarray, language: str, max_new_tokens: int) -> list[str]:
        """Decode a ``(B, 80, 3000)`` float32 batch of padded log-mel windows."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self.model
        tok = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
        prompt = model.get_prompt(tok, [], without_timestamps=True)
        enc = model.encode(feats)  # CTranslate2 StorageView (B, 1500, 512)
        res = model.model.generate(
            enc, [list(prompt) for _ in range(feats.shape[0])], beam_size=self.beam_size,
            max_length=min(model.max_length, len(prompt) + max_new_tokens),
            suppress_blank=True, suppress_tokens=get_suppressed_tokens(tok, [-1]))
        out = []
        for r in res:
            ids = [t for t in r.sequences_ids[0] if t < tok.eot]
            out.append(tok.decode(ids).strip())
        return out

    def transcribe(self, wavs: list[np.ndarray], language: str, *, progress: bool = False) -> list[str]:
        """Batched transcription of ``B`` utterances in ``language``.

        Args:
            wavs: ``B`` waveforms ``(N_i,)`` float32 16 kHz.
            language: ``en`` or ``zh`` (forced; no language detection).
            progress: show a tqdm bar over batches.
        Returns:
            ``B`` transcripts (Chinese in simplified characters), in input order.
        Raises:
            UnknownLanguageError, EngineError (empty/non-finite/non-mono input).
        """
        check_language(language)
        xs = _check_wavs(wavs)
        if self.pack_s > 0 and len(xs) > 1:
            return self._transcribe_packed(xs, language, progress=progress)
        return self._transcribe_windows(xs, language, progress=progress)

    def _transcribe_windows(self, xs: list[np.ndarray], language: str, *, progress: bool = False) -> list[str]:
        """One padded 30 s window per utterance (see :meth:`transcribe`)."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import get_compression_ratio
        from tqdm.auto import tqdm

        out: list[str | None] = [None] * len(xs)
        redo: list[int] = []
        short = [i for i, x in enumerate(xs) if x.size <= WHISPER_WINDOW_S * SAMPLE_RATE_HZ]
        short_set = set(short)
        long_ = [i for i in range(len(xs)) if i not in short_set]
        batches = [short[k:k + self.batch_size] for k in range(0, len(short), self.batch_size)]
        with self._lock:
            fe = self.model.feature_extractor
            for b in tqdm(batches, desc="whisper", unit="batch", disable=not progress):
                feats = np.stack([pad_or_trim(fe(xs[i])[..., :-1]) for i in b]).astype(np.float32)  # (B, 80, 3000)
                longest_s = max(xs[i].size for i in b) / SAMPLE_RATE_HZ
                cap = min(self.max_new_tokens, int(np.ceil(longest_s * MAX_TOKENS_PER_S)) + 10)
                for i, t in zip(b, self._generate(feats, language, cap)):
                    if get_compression_ratio(t) > COMPRESSION_RATIO_MAX:
                        redo.append(i)  # a repetition loop: Whisper's own fallback decides (below)
                    else:
                        out[i] = self._post(t, language)
        for i in long_ + redo:
            out[i] = self.transcribe_one(xs[i], language)
        return [o or "" for o in out]

    def pack_plan(self, durations_s: Sequence[float], pack_s: float | None = None) -> list[list[int]]:
        """Group utterance indices, in order, into windows of at most ``pack_s`` seconds.

        Args: ``durations_s``: ``B`` durations in seconds; ``pack_s``: the window (default the
            engine's ``pack_s``).
        Returns: windows as lists of indices; an utterance longer than ``pack_s`` is alone.
        """
        limit = self.pack_s if pack_s is None else float(pack_s)
        windows: list[list[int]] = []
        cur: list[int] = []
        used = 0.0
        for i, d in enumerate(durations_s):
            need = d if not cur else used + self.pack_gap_s + d
            if cur and need > limit:
                windows.append(cur)
                cur, used = [], 0.0
                need = d
            cur.append(i)
            used = need
        if cur:
            windows.append(cur)
        return windows

    def _transcribe_packed(self, xs: list[np.ndarray], language: str, *, progress: bool = False) -> list[str]:
        """Packed windows through ``BatchedInferencePipeline`` with word timestamps (module docstring)."""
        from faster_whisper import BatchedInferencePipeline
        from faster_whisper.transcribe import get_compression_ratio

        sr = SAMPLE_RATE_HZ
        gap = np.zeros(int(round(self.pack_gap_s * sr)), dtype=np.float32)
        plan = self.pack_plan([x.size / sr for x in xs])
        packed = [w for w in plan if len(w) > 1]
        out: list[str | None] = [None] * len(xs)
        if packed:
            pieces: list[np.ndarray] = []
            spans: dict[int, tuple[float, float]] = {}  # utterance -> (start, end) s in the long audio
            clips: list[dict[str, float]] = []
            pos = 0
            for w in packed:
                w_start = pos
                for k, i in enumerate(w):
                    if k:
                        pieces.append(gap)
                        pos += gap.size
                    spans[i] = (pos / sr, (pos + xs[i].size) / sr)
                    pieces.append(xs[i])
                    pos += xs[i].size
                clips.append({"start": w_start / sr, "end": pos / sr})
                pieces.append(gap)  # keeps windows apart in sample positions
                pos += gap.size
            audio = np.concatenate(pieces)
            words: dict[int, list[str]] = {i: [] for i in spans}  # in audio order, like ``spans``
            half = self.pack_gap_s / 2
            with self._lock:
                pipe = BatchedInferencePipeline(self.model)
                segments, _ = pipe.transcribe(
                    audio, language=language, task="transcribe", beam_size=self.beam_size, word_timestamps=True,
                    clip_timestamps=clips, batch_size=self.batch_size, without_timestamps=False,
                    vad_filter=False, log_progress=progress, max_new_tokens=self.max_new_tokens)
                for seg in segments:
                    for wd in seg.words or []:
                        mid = (wd.start + wd.end) / 2
                        hit = next((i for i in spans if spans[i][0] - half <= mid <= spans[i][1] + half), None)
                        if hit is not None:
                            words[hit].append(wd.word)
            for i, ws in words.items():
                text = "".join(ws).strip()
                if text and get_compression_ratio(text) <= COMPRESSION_RATIO_MAX:
                    out[i] = self._post(text, language)
        again = [i for i, o in enumerate(out) if o is None]  # lone utterances, and packed ones with no usable text
        if again:
            for i, t in zip(again, self._transcribe_windows([xs[i] for i in again], language), strict=True):
                out[i] = t
        return [o or "" for o in out]

    def align_words(self, wavs: list[np.ndarray], texts: Sequence[str], language: str, *,
                    pack_s: float = 28.0, progress: bool = False) -> list[list[tuple[str, float, float]]]:
        """Forced word alignment of known transcripts: where each word of ``texts[i]`` is spoken in
        ``wavs[i]``.

        Whisper's cross-attention DTW over the alignment heads (Radford et al. 2022; faster-whisper
        ``WhisperModel.find_alignment``, CTranslate2 ``Whisper.align``) is run on the *given* text
        tokens, not on a decode, so every word of the transcript gets a time. Consecutive clips are
        packed with ``pack_gap_s`` of silence into windows of at most ``pack_s`` seconds (one 30 s
        encoder pass per window, as :meth:`transcribe` packs); each clip's words come back by their
        token positions, their times relative to the clip. Words are Whisper's: space-led pieces in
        English (punctuation stays on its word), characters or character groups in Chinese
        (``Tokenizer.split_to_word_tokens``); ``"".join(words).strip()`` is the stripped transcript.

        Args:
            wavs: ``B`` waveforms ``(N_i,)`` float32 16 kHz.
            texts: ``B`` transcripts of ``wavs`` (non-blank).
            language: ``en`` or ``zh``.
            pack_s: packing window in seconds (at most :data:`WHISPER_WINDOW_S`).
            progress: tqdm bar over windows.

        Returns:
            ``B`` lists of ``(word, start_s, end_s)`` in spoken order, times in seconds from the clip
            start, clipped to ``[0, duration]``; ``[]`` for a clip over ``pack_s`` seconds or one
            the DTW could not align.

        Raises:
            UnknownLanguageError; EngineError: bad audio, ``B`` texts not matching ``B`` clips, a
            blank text, or ``pack_s`` outside ``(0, 30]``.
        """
        from faster_whisper.audio import pad_or_trim
        from tqdm.auto import tqdm

        check_language(language)
        xs = _check_wavs(wavs)
        if len(texts) != len(xs):
            raise EngineError(f"align_words needs one text per clip, got {len(texts)} texts for {len(xs)} clips")
        if any(not str(t).strip() for t in texts):
            raise EngineError("align_words got a blank transcript")
        if not 0.0 < pack_s <= WHISPER_WINDOW_S:
            raise EngineError(f"pack_s must be in (0, {WHISPER_WINDOW_S:g}] s, got {pack_s}")
        sr = SAMPLE_RATE_HZ
        plan = self.pack_plan([x.size / sr for x in xs], pack_s)
        plan = [w for w in plan if sum(xs[i].size for i in w) / sr <= pack_s]  # an over-long clip alone: no window
        gap = np.zeros(int(round(self.pack_gap_s * sr)), dtype=np.float32)
        out: list[list[tuple[str, float, float]]] = [[] for _ in xs]
        with self._lock:
            model = self.model
            tok = _whisper_tokenizer(str(self.model_dir.resolve()), language)  # the split whisper_words uses
            fe = model.feature_extractor
            batches = [plan[k:k + self.batch_size] for k in range(0, len(plan), self.batch_size)]
            for batch in tqdm(batches, desc="align", unit="batch", disable=not progress):
                feats, tokens, owners, offsets, frames = [], [], [], [], []
                for w in batch:
                    pieces, ids, own, offs, pos = [], [], [], {}, 0
                    for k, i in enumerate(w):
                        if k:
                            pieces.append(gap)
                            pos += gap.size
                        offs[i] = pos / sr
                        pieces.append(xs[i])
                        pos += xs[i].size
                        t = tok.encode(_whisper_text(texts[i], language))
                        ids.extend(t)
                        own.extend([i] * len(t))
                    audio = np.concatenate(pieces)
                    mel = fe(audio)[..., :-1]
                    frames.append(int(mel.shape[-1]))
                    feats.append(pad_or_trim(mel))
                    tokens.append(ids)
                    owners.append(own)
                    offsets.append(offs)
                enc = model.encode(np.stack(feats).astype(np.float32))
                results = model.find_alignment(tok, tokens, enc, frames)
                for words, own, offs in zip(results, owners, offsets):
                    at = 0
                    for wd in words:
                        i = own[at] if at < len(own) else None
                        at += len(wd["tokens"])
                        if i is None:
                            continue
                        dur = xs[i].size / sr
                        a = float(np.clip(wd["start"] - offs[i], 0.0, dur))
                        b = float(np.clip(wd["end"] - offs[i], a, dur))
                        out[i].append((wd["word"], a, b))
        return out


class PocketsphinxASR:
    """English ASR with CMU PocketSphinx 5 (its US-English acoustic model, LM and dictionary ship in
    the ``pocketsphinx`` wheel; https://pocketsphinx.readthedocs.io). English only; far weaker than
    Whisper (a second, independent opinion for filtering, never the evaluation ASR).

    Raises:
        EngineUnavailableError: the ``pocketsphinx`` package is not installed.
    """

    def __init__(self) -> None:
        try:
            import pocketsphinx  # noqa: F401
        except ImportError as e:
            raise EngineUnavailableError(f"pocketsphinx is not installed ({e}); pip install pocketsphinx") from None
        self._lock = threading.Lock()
        self._decoder: Any = None

    def _dec(self) -> Any:
        if self._decoder is None:
            from pocketsphinx import Decoder

            self._decoder = Decoder(samprate=SAMPLE_RATE_HZ, loglevel="FATAL")
        return self._decoder

    def transcribe(self, wavs: list[np.ndarray], language: str) -> list[str]:
        """Transcribe ``B`` English waveforms ``(N_i,)`` float32 16 kHz one by one.

        Raises: UnknownLanguageError (anything but ``en``), EngineError (bad input).
        """
        check_language(language)
        if language != "en":
            from uniss.engines import UnknownLanguageError

            raise UnknownLanguageError(f"PocketsphinxASR supports only 'en', got {language!r}")
        out = []
        with self._lock:
            dec = self._dec()
            for x in _check_wavs(wavs):
                pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()  # 16-bit LE PCM
                dec.start_utt()
                dec.process_raw(pcm, full_utt=True)
                dec.end_utt()
                hyp = dec.hyp()
                out.append(hyp.hypstr if hyp is not None else "")
        return out


def normalize_text(text: str, language: str) -> str:
    """Paper App. C normalisation: ``en`` lowercased, punctuation removed except apostrophes;
    ``zh`` simplified (OpenCC t2s), punctuation removed. Whitespace collapsed.

    Raises: UnknownLanguageError. Delegates to :func:`uniss.metrics.normalize_for_bleu`.
    """
    from uniss.metrics import normalize_for_bleu

    check_language(language)
    return normalize_for_bleu(text, language)


def error_rate(ref: str, hyp: str, language: str) -> float:
    """WER (``en``, words) or CER (``zh``, characters) of one pair with jiwer, after
    :func:`normalize_text` (paper App. C: Whisper WER for English, CER for Chinese).

    Returns a float >= 0 (> 1 with many insertions); an empty reference gives 0.0 if the
    hypothesis is empty too, else 1.0. Raises: UnknownLanguageError.
    Delegates to :func:`uniss.metrics.utterance_error_rate` (one rule for data filtering and eval).
    """
    from uniss.metrics import utterance_error_rate

    check_language(language)
    return float(utterance_error_rate(ref or "", hyp or "", language))
