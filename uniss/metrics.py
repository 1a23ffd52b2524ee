"""S2ST evaluation metrics of the UniSS paper (§5.2.2, App. C.1), computed per utterance and per corpus.

Size (~590 lines, over the house guide of ~500): every metric's normalisation rule lives next to
the metric that applies it, so that Text-BLEU, Speech-BLEU and WER/CER share one definition of
the paper's text normalisation; the module holds only these pure functions.

Metrics (higher is better unless noted):

- **Text-BLEU**: SacreBLEU corpus BLEU (Post 2018) of the model's intermediate text translation against
  the reference translation, after the paper's normalisation (App. C.1): English lowercased and
  stripped of punctuation except apostrophes; Chinese converted to simplified characters (OpenCC
  ``t2s``), punctuation removed, scored with SacreBLEU ``tokenize="zh"`` (one token per CJK character).
- **Speech-BLEU** (ASR-BLEU): the same BLEU on the ASR transcript of the *output speech*.
- **WER / CER** (lower is better): jiwer word error rate (English) or character error rate (Chinese)
  on the same normalised text.
- **SLC-p** (Speech Length Compliance, Wu et al. 2023; App. C.1): share of outputs whose duration
  ratio ``output_s / source_s`` lies within ``[1 - p, 1 + p]``; the paper reports p = 0.2 and 0.4.
- **Speaker similarity**: mean cosine of speaker embeddings of source and output speech (the
  embedding function is injected, e.g. ``uniss.engines.speaker.SpeakerEncoder().embed``).
- **RTF** (real-time factor, lower is better): processing seconds / source audio seconds.

- **MOS** (proxy for the paper's UTMOS, Table 1): mean predicted MOS (about 1-5) of the output speech
  over the utterances that have one; the predictor is injected (``uniss.engines.mos.DNSMOS``, DNSMOS
  P.808, because UTMOS needs ``torchaudio``, which has no build for this project's torch); an output
  with no speech scores NaN and is left out of the mean.

This module is pure (numpy, sacrebleu, jiwer, opencc): no tracking, no model loading.
Shape legend: ``N`` utterances; audio is ``(T,)`` float32 mono at 16 kHz; embeddings ``(D,)`` float32.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from uniss.errors import UnissError

#: Languages the metrics know (paper: Chinese and English only).
LANGUAGES = ("en", "zh")

#: SLC tolerances reported in paper Table 1 (App. C.1: "within ±20% or ±40%").
SLC_TOLERANCES = (0.2, 0.4)

#: Apostrophes kept by the English normalisation (App. C.1 "excluding apostrophes"); the typographic
#: right single quote is folded into ASCII ``'`` first.
_APOSTROPHES = {"'": "'", "\u2019": "'", "\u2018": "'", "\u02bc": "'"}

#: Float slack for the SLC interval bounds (a ratio of exactly 1.2 must count as inside ±0.2).
_EPS = 1e-9


class MetricsError(UnissError, ValueError):
    """Bad metric input: unknown language, mismatched list lengths, empty corpus, bad duration."""


# ---------------------------------------------------------------------------------------------
# normalisation (App. C.1)
# ---------------------------------------------------------------------------------------------


def _check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise MetricsError(f"unknown language {language!r}: expected one of {LANGUAGES}")
    return language


@lru_cache(maxsize=1)
def _t2s() -> Any:
    """The process-wide OpenCC ``t2s`` converter (the only one: ASR output and metric text share it)."""
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese (OpenCC ``t2s`` config); other scripts unchanged."""
    return _t2s().convert(text)


def _strip_punctuation(text: str, keep_apostrophe: bool) -> str:
    """Replace every Unicode punctuation (category ``P*``) and symbol (``S*``) character by a space.

    Symbols are removed too so that full-width marks such as ``～`` or ``￥`` never count as words.
    """
    out = []
    for ch in text:
        if keep_apostrophe and ch in _APOSTROPHES:
            out.append("'")
            continue
        cat = unicodedata.category(ch)
        out.append(" " if cat[0] in ("P", "S") else ch)
    return "".join(out)


def normalize_for_bleu(text: str, language: str) -> str:
    """Normalise one sentence the way the paper does before BLEU/WER (App. C.1).

    - ``en``: NFKC, lowercase, punctuation and symbols removed except apostrophes (typographic
      apostrophes folded to ``'``), whitespace collapsed.
    - ``zh``: NFKC (full-width digits/letters to ASCII), traditional -> simplified (OpenCC ``t2s``),
      punctuation and symbols removed, whitespace collapsed. Character segmentation is left to
      SacreBLEU's ``zh`` tokenizer (``corpus_bleu``) or to CER (``error_rate``).

    Args:
        text: one sentence.
        language: ``"en"`` or ``"zh"``.
    Returns:
        the normalised sentence (may be empty).
    Raises:
        MetricsError: unknown language.
    """
    _check_language(language)
    text = unicodedata.normalize("NFKC", text or "")
    if language == "en":
        text = _strip_punctuation(text.lower(), keep_apostrophe=True)
        # an apostrophe left alone between spaces (from quoted 'text') is punctuation, not a word
        text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    else:
        text = _strip_punctuation(to_simplified(text), keep_apostrophe=False)
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# BLEU
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BleuResult:
    """A SacreBLEU corpus score.

    Attributes:
        score: corpus BLEU in [0, 100].
        signature: SacreBLEU signature string (``nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:…``);
            log it with every score (App. C.1, ARCHITECTURE "Evaluation").
        n: number of sentences scored.
        precisions: the four n-gram precisions (percent).
        brevity_penalty: BP in [0, 1].
        sys_len / ref_len: hypothesis / reference length in tokens.
    """

    score: float
    signature: str
    n: int
    precisions: tuple[float, ...]
    brevity_penalty: float
    sys_len: int
    ref_len: int


def _tokenizer_for(language: str) -> str:
    """SacreBLEU tokenizer per target language: ``zh`` for Chinese (App. C.1), ``13a`` (default) else."""
    return "zh" if language == "zh" else "13a"


def _check_pairs(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise MetricsError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not hyps:
        raise MetricsError("empty corpus: nothing to score")


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str], language: str) -> BleuResult:
    """Corpus BLEU of ``hyps`` against one reference each, with the paper's normalisation.

    Used for Text-BLEU (hyps = model text translations) and Speech-BLEU (hyps = ASR of output speech).

    Args:
        hyps: N hypothesis sentences (``None``/empty counts as an empty output, scored, not dropped).
        refs: N reference sentences.
        language: target language (``en`` -> ``tokenize="13a"``, ``zh`` -> ``tokenize="zh"``).
    Returns:
        :class:`BleuResult` with the SacreBLEU signature.
    Raises:
        MetricsError: unknown language, length mismatch or empty corpus.
    Source: SacreBLEU ``BLEU.corpus_score`` (Post 2018); paper App. C.1.
    """
    import sacrebleu

    _check_language(language)
    _check_pairs(hyps, refs)
    h = [normalize_for_bleu(x or "", language) for x in hyps]
    r = [normalize_for_bleu(x or "", language) for x in refs]
    bleu = sacrebleu.BLEU(tokenize=_tokenizer_for(language))
    res = bleu.corpus_score(h, [r])
    return BleuResult(
        score=float(res.score),
        signature=str(bleu.get_signature()),
        n=len(h),
        precisions=tuple(float(p) for p in res.precisions),
        brevity_penalty=float(res.bp),
        sys_len=int(res.sys_len),
        ref_len=int(res.ref_len),
    )


@dataclass(frozen=True)
class PairedBleu:
    """Paired bootstrap resampling of two systems' corpus BLEU on the same sentences (Koehn 2004).

    Attributes:
        base / other: corpus BLEU of each system on all N sentences (equal to :func:`corpus_bleu`).
        delta: ``other - base``.
        p_value: SacreBLEU's paired-bootstrap p-value of the difference (the share of resamples in
            which the difference is not larger than zero, centred; small = the difference is unlikely
            to be chance on these sentences).
        ci: half-width of the 95 % confidence interval of ``other``'s BLEU over the resamples.
        n / n_samples: sentences; bootstrap resamples.
        signature: the SacreBLEU signature, with ``bs:<n_samples>|seed:<seed>``.
    """

    base: float
    other: float
    delta: float
    p_value: float
    ci: float
    n: int
    n_samples: int
    signature: str


def paired_bootstrap_bleu(base_hyps: Sequence[str], other_hyps: Sequence[str], refs: Sequence[str], language: str, *,
                          n_samples: int = 1000) -> PairedBleu:
    """Is ``other``'s corpus BLEU different from ``base``'s on these sentences, or is it chance?

    Both systems' outputs are normalised as :func:`corpus_bleu` does (paper App. C.1) and tested
    with SacreBLEU's paired bootstrap resampling (``sacrebleu.significance.PairedTest``,
    ``test_type="bs"``; seed ``SACREBLEU_SEED``, default 12345, so the result is reproducible).

    Args:
        base_hyps / other_hyps: N hypotheses of each system, sentence ``i`` of both for reference ``i``.
        refs: N references.
        language: target language (``en``/``zh``: the tokenizer of :func:`corpus_bleu`).
        n_samples: bootstrap resamples (SacreBLEU's default 1,000).
    Returns:
        :class:`PairedBleu`.
    Raises:
        MetricsError: unknown language, length mismatch, empty corpus, ``n_samples < 100``.
    """
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    _check_language(language)
    _check_pairs(base_hyps, refs)
    _check_pairs(other_hyps, refs)
    if int(n_samples) < 100:
        raise MetricsError(f"n_samples must be >= 100, got {n_samples}")
    norm = lambda xs: [normalize_for_bleu(x or "", language) for x in xs]  # noqa: E731
    systems = [("base", norm(base_hyps)), ("other", norm(other_hyps))]
    metric = BLEU(tokenize=_tokenizer_for(language))
    signatures, results = PairedTest(systems, {"BLEU": metric}, [norm(refs)], test_type="bs", n_samples=int(n_samples))()
    base, other = results["BLEU"]
    # SacreBLEU (after multeval) gives identical scores a p-value of 1 / (n_samples + 1); a zero
    # difference is no evidence of a difference, so it is reported as p = 1.
    p_value = 1.0 if float(other.score) == float(base.score) else float(other.p_value)
    return PairedBleu(base=float(base.score), other=float(other.score), delta=float(other.score) - float(base.score),
                      p_value=p_value, ci=float(other.ci), n=len(refs), n_samples=int(n_samples),
                      signature=str(signatures["BLEU"]))


def sentence_bleu(hyp: str, ref: str, language: str) -> float:
    """Per-utterance BLEU (SacreBLEU ``sentence_score``, effective order) for the per-utterance table.

    Not the reported metric (paper reports corpus BLEU); kept so bad utterances can be found.
    Raises:
        MetricsError: unknown language.
    """
    import sacrebleu

    _check_language(language)
    bleu = sacrebleu.BLEU(tokenize=_tokenizer_for(language), effective_order=True)
    return float(bleu.sentence_score(normalize_for_bleu(hyp or "", language), [normalize_for_bleu(ref or "", language)]).score)


# ---------------------------------------------------------------------------------------------
# WER / CER
# ---------------------------------------------------------------------------------------------


def _cer_units(text: str) -> str:
    """Chinese CER units: every non-space character separated by one space (jiwer counts words)."""
    return " ".join(ch for ch in text if not ch.isspace())


def error_rate(refs: Sequence[str], hyps: Sequence[str], language: str) -> float:
    """Corpus WER (``en``) or CER (``zh``) with jiwer, on :func:`normalize_for_bleu` text.

    Corpus rate = total edits / total reference units (jiwer's corpus aggregation).

    Args:
        refs: N reference sentences.
        hyps: N hypotheses.
        language: ``en`` (WER over words) or ``zh`` (CER over characters).
    Returns:
        error rate >= 0 (may exceed 1 with many insertions). An all-empty reference corpus gives 0.0
        when the hypotheses are empty too and 1.0 otherwise.
    Raises:
        MetricsError: unknown language, length mismatch, empty corpus.
    Source: jiwer ``wer``/``cer`` (process_words); paper App. C.1 normalisation.
    """
    import jiwer

    _check_language(language)
    _check_pairs(hyps, refs)
    r = [normalize_for_bleu(x or "", language) for x in refs]
    h = [normalize_for_bleu(x or "", language) for x in hyps]
    if language == "zh":
        r, h = [_cer_units(x) for x in r], [_cer_units(x) for x in h]
    n_ref = sum(len(x.split()) for x in r)
    if n_ref == 0:
        return 0.0 if all(not x for x in h) else 1.0
    # jiwer rejects empty reference strings: score only the pairs it accepts, count the rest by hand
    keep = [i for i, x in enumerate(r) if x]
    out = jiwer.process_words([r[i] for i in keep], [h[i] for i in keep])
    edits = out.substitutions + out.deletions + out.insertions
    edits += sum(len(h[i].split()) for i in range(len(r)) if not r[i])  # insertions vs empty refs
    return float(edits / n_ref)


def utterance_error_rate(ref: str, hyp: str, language: str) -> float:
    """:func:`error_rate` of one pair (WER for ``en``, CER for ``zh``)."""
    return error_rate([ref], [hyp], language)


# ---------------------------------------------------------------------------------------------
# duration, speaker, speed
# ---------------------------------------------------------------------------------------------


def duration_ratios(source_s: Sequence[float], output_s: Sequence[float]) -> np.ndarray:
    """``output_s / source_s`` per utterance, shape ``(N,)`` float64.

    Raises:
        MetricsError: length mismatch, empty input, a source duration <= 0 or a negative/NaN output
            duration.
    """
    s = np.asarray(source_s, dtype=np.float64)
    o = np.asarray(output_s, dtype=np.float64)
    if s.shape != o.shape or s.ndim != 1:
        raise MetricsError(f"duration lists differ in shape: {s.shape} vs {o.shape}")
    if s.size == 0:
        raise MetricsError("empty corpus: no durations")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise MetricsError("source durations must be finite and > 0 seconds")
    if not np.all(np.isfinite(o)) or np.any(o < 0):
        raise MetricsError("output durations must be finite and >= 0 seconds")
    return o / s


def slc(source_s: Sequence[float], output_s: Sequence[float], p: float) -> float:
    """Speech Length Compliance SLC-p: share of outputs with ``1 - p <= output_s/source_s <= 1 + p``.

    Args:
        source_s: N source durations in seconds.
        output_s: N output durations in seconds (0 for an utterance that produced no speech: it counts
            as a miss, never dropped).
        p: tolerance (paper: 0.2 and 0.4).
    Returns:
        share in [0, 1].
    Raises:
        MetricsError: bad durations or ``p`` not in (0, 1].
    Source: paper App. C.1 (SLC, Wu et al. 2023).
    """
    if not (0 < p <= 1):
        raise MetricsError(f"SLC tolerance must be in (0, 1], got {p}")
    r = duration_ratios(source_s, output_s)
    inside = (r >= 1 - p - _EPS) & (r <= 1 + p + _EPS)
    return float(inside.mean())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two ``(D,)`` vectors in [-1, 1].

    Raises:
        MetricsError: shape mismatch or a zero vector.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise MetricsError(f"embedding shapes differ: {a.shape} vs {b.shape}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise MetricsError("zero speaker embedding")
    return float(np.dot(a, b) / (na * nb))


def speaker_similarities(
    source_wavs: Sequence[np.ndarray],
    output_wavs: Sequence[np.ndarray],
    embed: Callable[[np.ndarray], np.ndarray],
) -> list[float]:
    """Cosine of ``embed(source)`` and ``embed(output)`` per utterance.

    Args:
        source_wavs / output_wavs: N waveforms ``(T,)`` float32, 16 kHz.
        embed: waveform -> ``(D,)`` speaker embedding (resemblyzer: D = 256, L2-normalised).
    Returns:
        N cosines; an empty output waveform, or one in which ``embed`` finds no speech (it raises a
        ``UnissError``, e.g. an undertrained model's silent output), gives ``nan`` (no voice to
        compare), kept in the list.
    Raises:
        MetricsError: length mismatch.
    """
    if len(source_wavs) != len(output_wavs):
        raise MetricsError(f"{len(source_wavs)} source but {len(output_wavs)} output waveforms")
    out: list[float] = []
    for s, o in zip(source_wavs, output_wavs, strict=True):
        if o is None or len(o) == 0 or s is None or len(s) == 0:
            out.append(float("nan"))
        else:
            try:
                out.append(cosine(embed(s), embed(o)))
            except UnissError:
                out.append(float("nan"))
    return out


def mean_finite(values: Sequence[float]) -> float:
    """Mean over finite values (``nan`` when there are none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    return float(v.mean()) if v.size else float("nan")


def real_time_factor(processing_s: float | Sequence[float], audio_s: float | Sequence[float]) -> float:
    """RTF = processing seconds / seconds of source audio processed (< 1 is faster than real time).

    Raises:
        MetricsError: non-positive total audio duration or negative processing time.
    """
    p = float(np.sum(processing_s))
    a = float(np.sum(audio_s))
    if a <= 0:
        raise MetricsError("total audio duration must be > 0 s for an RTF")
    if p < 0:
        raise MetricsError("processing time must be >= 0 s")
    return p / a


# ---------------------------------------------------------------------------------------------
# ASR consistency (batched vs unbatched)
# ---------------------------------------------------------------------------------------------


class ASRLike(Protocol):
    """What :func:`asr_batch_agreement` needs (``uniss.engines.asr.ASREngine``)."""

    def transcribe(self, wavs: list[np.ndarray], language: str) -> list[str]: ...


@dataclass(frozen=True)
class ASRAgreement:
    """Batched vs one-by-one ASR on the same clips.

    Attributes:
        n: clips compared.
        exact: share of clips whose normalised transcripts are identical.
        error_rate: corpus WER/CER of the batched transcripts against the unbatched ones.
        batched / unbatched: the transcripts.
    """

    n: int
    exact: float
    error_rate: float
    batched: list[str]
    unbatched: list[str]


def asr_batch_agreement(asr: ASRLike, wavs: Sequence[np.ndarray], language: str) -> ASRAgreement:
    """Cross-check batched ASR against unbatched ASR (ARCHITECTURE "Evaluation").

    A padded batch decoded without attention masks hallucinates on the short clips (a public UniSS
    reproduction had to void its ZH->EN Speech-BLEU for this); agreement near 1 shows masks work.

    Args:
        asr: engine with ``transcribe(list[(T,) float32 16 kHz], language) -> list[str]``.
        wavs: clips of *different* lengths (so the batch is padded).
        language: transcript language.
    Raises:
        MetricsError: empty input or unknown language.
    """
    _check_language(language)
    if not wavs:
        raise MetricsError("no clips for the ASR agreement check")
    batched = list(asr.transcribe(list(wavs), language))
    unbatched = [asr.transcribe([w], language)[0] for w in wavs]
    nb = [normalize_for_bleu(x, language) for x in batched]
    nu = [normalize_for_bleu(x, language) for x in unbatched]
    exact = float(np.mean([a == b for a, b in zip(nb, nu, strict=True)]))
    er = error_rate(unbatched, batched, language)
    return ASRAgreement(n=len(wavs), exact=exact, error_rate=er, batched=batched, unbatched=unbatched)


# ---------------------------------------------------------------------------------------------
# per-utterance records and corpus scores
# ---------------------------------------------------------------------------------------------


@dataclass
class UtteranceResult:
    """One evaluated utterance (one row of the per-utterance table).

    Durations in seconds; ``output_text`` is the model's text translation (empty in Direct mode);
    ``output_asr`` the ASR transcript of the output speech; ``speaker_sim`` cosine in [-1, 1] or nan;
    ``mos`` predicted MOS (1-5) of the output or nan (no speech); ``voice_set`` the evaluation slice
    of the row (``seen``/``heldout``/``real``; ``""`` when the data has no ``voice_set`` column).
    """

    id: str
    direction: str
    mode: str
    src_lang: str
    tgt_lang: str
    src_text: str
    ref_text: str
    output_text: str
    output_asr: str
    source_text_pred: str = ""
    source_duration_s: float = 0.0
    output_duration_s: float = 0.0
    ref_duration_s: float = float("nan")
    processing_s: float = 0.0
    speaker_sim: float = float("nan")
    mos: float = float("nan")
    voice_set: str = ""
    complete: bool = True
    reason: str = ""
    text_bleu: float = float("nan")
    speech_bleu: float = float("nan")
    speech_error_rate: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ratio(self) -> float:
        """output / source duration."""
        return self.output_duration_s / self.source_duration_s if self.source_duration_s > 0 else float("nan")

    def to_row(self) -> dict[str, Any]:
        """Flat dict (``extra`` merged with an ``extra_`` prefix) plus ``duration_ratio``."""
        d = asdict(self)
        extra = d.pop("extra")
        d["duration_ratio"] = self.duration_ratio
        d.update({f"extra_{k}": v for k, v in extra.items()})
        return d


#: Metric names in the order of paper Table 1 (A.PCP is not computable here; ``mos`` is the DNSMOS
#: proxy of its UTMOS column) + RTF.
TABLE1_METRICS = ("speech_bleu", "text_bleu", "slc_0.2", "slc_0.4", "speaker_sim", "mos", "rtf")


@dataclass(frozen=True)
class CorpusScores:
    """Corpus metrics of one (direction, mode, slice) group.

    ``text_bleu``/``text_signature`` are ``nan``/``""`` when no utterance produced text (Direct mode).
    ``mos`` is the mean finite per-utterance MOS (nan when none); ``slice`` names the utterance subset
    (``all``, or a ``voice_set`` value such as ``seen``/``heldout``/``real``).
    """

    direction: str
    mode: str
    n: int
    speech_bleu: float
    speech_signature: str
    text_bleu: float
    text_signature: str
    speech_error_rate: float
    slc_02: float
    slc_04: float
    speaker_sim: float
    rtf: float
    complete_share: float
    mos: float = float("nan")
    slice: str = "all"

    def metrics(self) -> dict[str, float]:
        """Metric name -> value (names of :data:`TABLE1_METRICS` plus ``speech_wer`` and ``complete``)."""
        return {
            "speech_bleu": self.speech_bleu,
            "text_bleu": self.text_bleu,
            "slc_0.2": self.slc_02,
            "slc_0.4": self.slc_04,
            "speaker_sim": self.speaker_sim,
            "mos": self.mos,
            "rtf": self.rtf,
            "speech_wer": self.speech_error_rate,
            "complete": self.complete_share,
        }


def score_group(results: Sequence[UtteranceResult], slice: str = "all") -> CorpusScores:
    """Corpus scores of utterances sharing one direction and mode; fills their per-utterance BLEU/WER.
    ``slice`` labels the subset scored (recorded in :attr:`CorpusScores.slice`).

    Every utterance counts (failed or empty outputs score as empty text and 0 s of speech).

    Raises:
        MetricsError: empty group, mixed directions/modes, unknown language, bad durations.
    """
    if not results:
        raise MetricsError("empty group")
    direction, mode, tgt = results[0].direction, results[0].mode, results[0].tgt_lang
    if any(r.direction != direction or r.mode != mode for r in results):
        raise MetricsError("score_group needs one direction and one mode")
    refs = [r.ref_text for r in results]
    sp = corpus_bleu([r.output_asr for r in results], refs, tgt)
    has_text = any((r.output_text or "").strip() for r in results)
    tx = corpus_bleu([r.output_text for r in results], refs, tgt) if has_text else None
    for r in results:
        r.speech_bleu = sentence_bleu(r.output_asr, r.ref_text, tgt)
        r.text_bleu = sentence_bleu(r.output_text, r.ref_text, tgt) if has_text else float("nan")
        r.speech_error_rate = utterance_error_rate(r.ref_text, r.output_asr, tgt) if normalize_for_bleu(r.ref_text, tgt) else float("nan")
    src = [r.source_duration_s for r in results]
    out = [r.output_duration_s for r in results]
    return CorpusScores(
        direction=direction,
        mode=mode,
        n=len(results),
        speech_bleu=sp.score,
        speech_signature=sp.signature,
        text_bleu=tx.score if tx else float("nan"),
        text_signature=tx.signature if tx else "",
        speech_error_rate=error_rate(refs, [r.output_asr for r in results], tgt),
        slc_02=slc(src, out, 0.2),
        slc_04=slc(src, out, 0.4),
        speaker_sim=mean_finite([r.speaker_sim for r in results]),
        rtf=real_time_factor([r.processing_s for r in results], src),
        complete_share=float(np.mean([bool(r.complete) for r in results])),
        mos=mean_finite([r.mos for r in results]),
        slice=slice,
    )


def metric_key(metric: str, direction: str, mode: str) -> str:
    """Flat MLflow metric name, e.g. ``speech_bleu.en-zh.quality`` (the key every part uses)."""
    return f"{metric}.{direction}.{mode}"


def parse_metric_key(key: str) -> tuple[str, str, str]:
    """Inverse of :func:`metric_key`: ``"slc_0.2.en-zh.quality"`` -> ``("slc_0.2", "en-zh", "quality")``.

    Raises:
        MetricsError: a key without ``.<direction>.<mode>`` suffix.
    """
    parts = key.rsplit(".", 2)
    if len(parts) != 3 or "-" not in parts[1]:
        raise MetricsError(f"not a metric key: {key!r} (expected metric.direction.mode)")
    return parts[0], parts[1], parts[2]
