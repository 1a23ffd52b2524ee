"""The UniST data steps as plain library functions (the KFP components in ``components/data.py`` and
the ``uniss data`` CLI call these; each takes and returns paths/plain values).

``build_source -> synthesize -> fit_codec (if no codec given) -> tokenize -> validate -> version``,
each cached/resumable through :class:`uniss.unist.cache.StepCache` (default cache:
``settings.home_dir / "cache" / "unist"``). The version step (git + DVC + S3) lives in
``registry.data``; :func:`build` commits to a registry its caller passes in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from uniss.settings import get_settings
from uniss.unist.alignment import ALIGNMENT, check_alignment, read_alignment
from uniss.unist.cache import StepCache
from uniss.unist.errors import UnistError
from uniss.unist.io import file_md5, read_table, write_table
from uniss.unist.params import DataParams, load_params
from uniss.unist.shards import MANIFEST, read_all, read_manifest, write_dataset, write_manifest

REAL_SPEECH = "real_speech.parquet"


def default_cache() -> StepCache:
    """The workspace step cache (``UNISS_HOME/cache/unist``)."""
    return StepCache(get_settings().home_dir / "cache" / "unist")


def _params(params: DataParams | dict | None) -> DataParams:
    if isinstance(params, DataParams):
        return params
    return load_params(overrides=params or None)


def build_source(size: str, out_dir: str | Path, seed: int | None = None, *, params: DataParams | dict | None = None,
                 tts: Any = None, cache: StepCache | None = None, sources: Any = None) -> dict[str, Any]:
    """Generate the demo source corpus (TTS voices, both directions, gcin-voice real test pairs) + the
    LibriVox / Asterisk real-speech set, or read the user's corpora (``sources``).

    Args:
        size: ``tiny`` | ``demo`` (``params.sizes``).
        out_dir: source folder (``source.parquet``, ``real_speech.parquet``, ``source.json``).
        seed: overrides ``params.seed``.
        tts: a ``TTSEngine`` (default: the ``params.tts`` engine, ``uniss.unist.synthesize.tts_engine``).
        sources: an :class:`uniss.unist.ingest.IngestSpec` or its dict (the pipeline parameter);
            ``None`` / ``{}`` / only ``demo`` sources: the demo corpus of ``size``
            (``demo:<size>`` picks another preset).

    Returns:
        summary dict (``rows``, counts, voices, timings).

    Raises:
        UnistError: an invalid sources spec or unreadable source (:mod:`uniss.unist.ingest`).
    """
    from uniss.unist.ingest import build_external_source, ingest_spec
    from uniss.unist.sources import build_demo_source

    p = _params(params)
    if seed is not None:
        p = p.model_copy(update={"seed": int(seed)})
    spec = ingest_spec(sources)
    if spec is not None and not spec.is_demo:
        return build_external_source(spec, out_dir, params=p)
    if spec is not None and spec.sources[0].path:
        size = spec.sources[0].path
    if tts is None:
        from uniss.unist.synthesize import tts_engine

        tts = tts_engine(p)
    return build_demo_source(size, out_dir, params=p, tts=tts, cache=cache or default_cache())


def synthesize(source_dir: str | Path, out_dir: str | Path, params: DataParams | dict | None = None, *,
               engines: Any = None, cache: StepCache | None = None) -> dict[str, Any]:
    """UniST synthesis + filters + shards + plots (no tokens yet; see :func:`tokenize`).

    Args:
        source_dir: folder written by :func:`build_source` (or ``sources.write_source``).
        out_dir: dataset folder (``manifest.json``, ``shards/``, ``quarantine.parquet``, ``plots/``).
        params: ``DataParams`` or a dict of overrides of ``params.yaml``'s ``data:`` section.
        engines: :class:`uniss.unist.synthesize.Engines` (default: the real engines).

    Returns:
        summary: ``rows`` (kept), ``dropped``, ``counts`` per step and subset, ``timings``, ``cache``.
    """
    from uniss.unist.plots import write_plots
    from uniss.unist.synthesize import default_engines, run_synthesis

    t0 = time.perf_counter()
    p = _params(params)
    src_dir, out = Path(source_dir), Path(out_dir)
    source = read_table(src_dir / "source.parquet")
    src_info = json.loads((src_dir / "source.json").read_text()) if (src_dir / "source.json").exists() else {}
    src_q = read_table(src_dir / "quarantine.parquet") if (src_dir / "quarantine.parquet").exists() else None
    if engines is None:
        engines = default_engines(p, translations=dict(zip(source["transcript"], source["translation"])))
    cache = cache or default_cache()
    res = run_synthesis(source, engines, p, cache=cache)
    quarantine = res["quarantine"]
    if src_q is not None and len(src_q):
        import pandas as pd

        quarantine = pd.concat([src_q, quarantine], ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if (src_dir / REAL_SPEECH).exists():
        shutil.copyfile(src_dir / REAL_SPEECH, out / REAL_SPEECH)
        extra["real_speech"] = {"path": REAL_SPEECH, "md5": file_md5(out / REAL_SPEECH),
                                "rows": int(len(read_table(out / REAL_SPEECH))),
                                "use": "held-out real English speech (LibriVox); no reference translation: "
                                       "evaluation/serving only, not training pairs"}
    if (src_dir / ALIGNMENT).exists():
        shutil.copyfile(src_dir / ALIGNMENT, out / ALIGNMENT)
        extra["alignment"] = _alignment_entry(out)
    plots = write_plots(res["samples"], quarantine, out / "plots")
    counts = {"source": {"rows": src_info.get("rows", len(source)), "dropped": src_info.get("dropped", 0)},
              "steps": res["counts"]}
    timings = {**src_info.get("timings", {}), **res["timings"], "synthesize_total_s": round(time.perf_counter() - t0, 3)}
    manifest = write_dataset(res["samples"], quarantine, out, rows_per_shard=p.rows_per_shard, manifest={
        "params": p.model_dump(mode="json"), "counts": counts, "timings": timings, "voice_map": res["voice_map"],
        "source": {k: src_info.get(k) for k in ("size", "seed", "md5", "voices", "tts")},
        "engines": engines.ids(), "cache": cache.stats.to_dict(), "plots": [f"plots/{n}" for n in plots], **extra,
    })
    _stamp_version(out, manifest)
    return {"rows": int(len(res["samples"])), "dropped": int(len(quarantine)), "counts": manifest["counts"],
            "timings": timings, "cache": cache.stats.to_dict()}


def _alignment_entry(data_dir: Path) -> dict[str, Any]:
    """Manifest entry of ``DATA/alignment.parquet`` (path, md5, rows per kind, what it is for)."""
    t = read_table(data_dir / ALIGNMENT)
    return {"path": ALIGNMENT, "md5": file_md5(data_dir / ALIGNMENT), "rows": int(len(t)),
            "kinds": {str(k): int(v) for k, v in t["kind"].value_counts().items()} if len(t) else {},
            "use": "phase-1 speech-text alignment corpus (paper §3.3): ASR/S2TT/TTS/MT samples, never S2ST "
                   "(the two sides are different voices); train-split lexicon sentences only"}


def _stamp_version(data_dir: Path, manifest: dict[str, Any]) -> None:
    """``manifest["version"]``: a content id over the shard md5s and codec fingerprint, and the alignment
    corpus md5 where the dataset has one (datasets without one keep the id of before)."""
    parts: list[Any] = [[s["md5"] for s in manifest["shards"]], manifest.get("codec_fingerprint")]
    if manifest.get("alignment"):
        parts.append(manifest["alignment"]["md5"])
    h = hashlib.sha256(json.dumps(parts).encode())
    manifest["version"] = f"sha-{h.hexdigest()[:12]}"
    write_manifest(data_dir, manifest)


#: Speech rows of the alignment corpus that the codec fit uses besides the UniST train split (see fit_codec).
CODEC_CORPUS_ROWS = 200


def pair_partners(n_rows: int) -> np.ndarray:
    """Pair partner of each clip of a table laid out as all its source clips, then all its target
    clips (the layout :func:`fit_codec` fits on).

    Args:
        n_rows: rows of the table.

    Returns:
        ``(2 * n_rows,)`` int64: a source clip's partner is its row's target clip and back.
    """
    return np.concatenate([np.arange(n_rows, 2 * n_rows), np.arange(n_rows)]).astype(np.int64)


def fit_codec(data_dir: str | Path, out_dir: str | Path, preset: str = "tiny", *, max_clips: int | None = None,
              cache: StepCache | None = None) -> str:
    """Fit the CPU "lite" triple tokenizer on the train split (source + target speech) and, where the
    dataset has one, the speech rows of its phase-1 alignment corpus, and save it.

    The alignment corpus holds train-split sentences only (``uniss.unist.alignment``; the data gate
    checks it), so no dev/test sentence reaches the codec. Its first :data:`CODEC_CORPUS_ROWS` speech
    rows (by id) give the decoder ~5x the speech of the demo's UniST train split (measured 2026-12-03:
    372 s -> 1,715 s); without them the v3 unit decoder's validation L1 was 4x its training L1 (0.28
    vs 0.07, 118 clips). More rows drown the UniST voices in the corpus's two: with 800 rows (5,707 s)
    the codec topline EN->ZH fell from 29.7 to 7.0 Speech-BLEU (the Mandarin corpus voice is gcin-voice
    syllable concatenation), ZH->EN stayed at 22.

    Cached: the fitted codec is stored under the step cache keyed by (train and corpus audio hashes,
    preset and the preset's config, ``max_clips``), so an unchanged rebuild copies it instead of
    refitting, and a changed preset refits.

    Each UniST train clip's pair partner (its row's other side) goes to the fit
    (``decoder_speaker_swap``); the alignment corpus clips have none (its sides are two voices).

    Args:
        data_dir: synthesized dataset.
        out_dir: codec directory to write (replaced).
        preset: ``LiteCodecConfig.preset`` name: ``tiny-v3`` | ``demo-v3`` | ``demo-v3-hifigan`` (codec
            v3; the pipeline's defaults are ``tiny-v3`` and ``demo-v3-hifigan``, ``params.yaml``
            ``pipeline.<size>.codec``) or ``tiny`` | ``demo`` (v2).
        max_clips: cap on training clips (default: all).

    Returns:
        the codec fingerprint.

    Raises:
        UnistError: no train rows.
    """
    from uniss.codecs.base import load_codec
    from uniss.codecs.lite import LITE_VERSION, LiteCodecConfig, fit_lite_codec
    from uniss.unist.io import decode_flac, frame_digest

    df = read_all(data_dir)
    train = df[df["split"] == "train"].sort_values("id").reset_index(drop=True)
    if train.empty:
        raise UnistError(f"{data_dir}: no train rows to fit a codec on")
    align = read_alignment(data_dir)
    corpus = (align[align["kind"] == "speech"].sort_values("id").head(CODEC_CORPUS_ROWS).reset_index(drop=True)
              if align is not None else train.iloc[:0])
    cache = cache or default_cache()
    cfg = LiteCodecConfig.preset(preset)
    key = hashlib.sha256(json.dumps([frame_digest(train, ["id", "src_audio", "tgt_audio"]), preset, max_clips,
                                     LITE_VERSION, frame_digest(corpus, ["id", "src_audio", "tgt_audio"]),
                                     cfg.to_dict()]  # a changed preset refits
                                    ).encode()).hexdigest()
    out = Path(out_dir)
    hit = cache.root / "codec" / key if cache.root is not None else None
    if hit is not None and (hit / "done").exists():
        cache.stats.hits["fit_codec"] = cache.stats.hits.get("fit_codec", 0) + 1
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(hit / "codec", out)
        return load_codec(out).fingerprint()
    cache.stats.misses["fit_codec"] = cache.stats.misses.get("fit_codec", 0) + 1
    wavs = [decode_flac(b) for t in (train, corpus) for side in ("src_audio", "tgt_audio") for b in t[side]]
    # source <-> target of one UniST row (one voice by design); the corpus's two sides are two voices
    partners = np.concatenate([pair_partners(len(train)), np.full(2 * len(corpus), -1, np.int64)])
    if max_clips:
        wavs, partners = wavs[:max_clips], np.where(partners[:max_clips] < max_clips, partners[:max_clips], -1)
    codec = fit_lite_codec(wavs, cfg, partners=partners)
    shutil.rmtree(out, ignore_errors=True)
    codec.save(out)
    if hit is not None:
        shutil.rmtree(hit, ignore_errors=True)
        shutil.copytree(out, hit / "codec")
        (hit / "done").write_text("1")
    return codec.fingerprint()


def tokenize(data_dir: str | Path, codec_dir: str | Path | None, out_dir: str | Path | None = None, *,
             cache: StepCache | None = None, codec: Any = None, align_words: bool = False) -> dict[str, Any]:
    """Add the six token columns (and, with ``align_words``, the four word-alignment columns) to every
    shard (cached by codec fingerprint) and rewrite the dataset.

    Args:
        data_dir: synthesized dataset.
        codec_dir: a saved codec (``uniss.codecs.load_codec``).
        out_dir: where to write the tokenized dataset (default: in place).
        codec: an already-loaded ``SpeechCodec`` (then ``codec_dir`` is only recorded).
        align_words: also write ``{side}_words`` / ``{side}_word_starts`` by Whisper-base forced
            alignment (``uniss.unist.tokenize``; ~25x real time on 2 cores), read by training with
            ``data.interleave_words``; off in the pipeline, whose recipe does not use them.

    Returns:
        summary: ``rows``, ``codec_fingerprint``, ``timings``.

    Raises:
        EngineUnavailableError: ``align_words`` and Whisper-base is not installed (``make models``).
    """
    from uniss.codecs.base import load_codec
    from uniss.unist.tokenize import TOKEN_COLUMNS, WORD_COLUMNS, tokenize_samples

    t0 = time.perf_counter()
    src, out = Path(data_dir), Path(out_dir) if out_dir is not None else Path(data_dir)
    m = read_manifest(src)
    p = DataParams(**m["params"])
    df = read_all(src)
    codec = codec if codec is not None else load_codec(codec_dir)
    cache = cache or default_cache()
    aligner = None
    if align_words:
        from uniss.engines.asr import WhisperASR

        aligner = WhisperASR()
    tok = tokenize_samples(df, codec, cache=cache, chunk_rows=p.chunk_rows, aligner=aligner)
    quarantine = read_table(src / m["quarantine"]["path"])
    if codec_dir is not None and codec.backend == "lite" and Path(codec_dir).resolve() != (out / "codec").resolve():
        # A data version carries the tokenizer its tokens came from (DATA/codec), as in build().
        out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out / "codec", ignore_errors=True)
        shutil.copytree(codec_dir, out / "codec")
        codec_dir = out / "codec"
    if out != src:
        out.mkdir(parents=True, exist_ok=True)
        for extra in ("plots", REAL_SPEECH):
            if (src / extra).is_dir():
                shutil.copytree(src / extra, out / extra, dirs_exist_ok=True)
            elif (src / extra).exists():
                shutil.copyfile(src / extra, out / extra)
    if m.get("alignment"):  # the phase-1 alignment corpus: its speech rows get the same six token columns
        align = read_alignment(src)
        speech = align[align["kind"] == "speech"]
        tok_a = tokenize_samples(speech, codec, cache=cache, chunk_rows=p.chunk_rows, aligner=aligner)
        cols = [*TOKEN_COLUMNS, *(WORD_COLUMNS if aligner is not None else [])]
        align = align.drop(columns=[c for c in cols if c in align]).merge(
            tok_a[["id", *cols]], on="id", how="left", validate="one_to_one")
        for c in cols:  # text rows: no speech, empty token and word lists
            align[c] = [v if isinstance(v, (list, np.ndarray)) else [] for v in align[c]]
        out.mkdir(parents=True, exist_ok=True)
        write_table(align, out / ALIGNMENT)
        m = {**m, "alignment": _alignment_entry(out)}
    keep = {k: v for k, v in m.items() if k not in ("shards", "quarantine", "created_at")}
    keep["codec_fingerprint"] = codec.fingerprint()
    keep["codec"] = {"backend": codec.backend, "sizes": dict(codec.sizes),
                     "path": str(Path(codec_dir).resolve()) if codec_dir is not None else None}
    keep["validation"] = {"passed": False, "suite": None, "failures": []}
    keep["timings"] = {**m.get("timings", {}), "tokenize_s": round(time.perf_counter() - t0, 3)}
    keep["cache"] = cache.stats.to_dict()
    manifest = write_dataset(tok, quarantine, out, rows_per_shard=p.rows_per_shard, manifest=keep)
    _stamp_version(out, manifest)
    return {"rows": int(len(tok)), "codec_fingerprint": keep["codec_fingerprint"], "timings": keep["timings"]}


def validate(data_dir: str | Path, out_dir: str | Path | None = None, *, raise_on_fail: bool = True) -> dict[str, Any]:
    """Run the Great Expectations gate; write the result into ``manifest["validation"]``.

    Args:
        data_dir: tokenized dataset.
        out_dir: write a validated copy there (shards hard-linked when possible); default in place.
        raise_on_fail: raise :class:`DataValidationError` when the suite fails (after recording it).

    Returns:
        the validation result dict (``passed``, ``failures``, ``statistics`` ...).

    Raises:
        DataValidationError: failed expectations (with row ids), when ``raise_on_fail``; among them a
            direction with train rows but no test rows (``direction zh-en has 12 train rows but 0 test
            rows``, :func:`uniss.unist.expectations.missing_heldout`), so a pipeline stops here, before
            training, instead of at its evaluate step.
        DataIntegrityError: md5 mismatch / missing shard (a corrupted shard file).
    """
    from uniss.unist.expectations import raise_on_failure, validate_samples

    t0 = time.perf_counter()
    src = Path(data_dir)
    m = read_manifest(src)
    df = read_all(src, verify=False)
    token_only = (m.get("codec") or {}).get("sizes") if m.get("token_only") else None  # released UniST: no audio
    params = DataParams(**m["params"])
    result = validate_samples(df, params, token_only_sizes=token_only)
    from uniss.unist.shards import verify_md5s

    if m.get("alignment"):  # the phase-1 alignment corpus: its own expectations, same result
        held = df[df["split"].isin(["dev", "test"])]
        texts = {str(t).strip() for c in ("src_text", "tgt_text") for t in held[c].dropna()}
        a_fail = check_alignment(read_alignment(src), texts, params.languages)
        if a_fail:
            result["passed"] = False
            result["failures"].extend(a_fail)
    bad = sorted(p for p, ok in verify_md5s(src).items() if not ok)
    if bad:  # a shard edited after it was written: the manifest no longer describes it
        result["passed"] = False
        result["failures"].append({"expectation": "shard_md5_matches_manifest", "column": None,
                                   "unexpected_count": len(bad), "row_ids": [], "shards": bad})
    result["seconds"] = round(time.perf_counter() - t0, 3)
    out = src
    if out_dir is not None and Path(out_dir).resolve() != src.resolve():
        out = Path(out_dir)
        _link_copy(src, out)
    m["validation"] = result
    m.setdefault("timings", {})["validate_s"] = result["seconds"]
    write_manifest(out, m)
    if raise_on_fail:
        raise_on_failure(result)
    return result


def _link_copy(src: Path, dst: Path) -> None:
    """Copy a dataset tree, hard-linking files when the filesystem allows it."""
    if dst.exists():
        shutil.rmtree(dst)

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link)
    (dst / MANIFEST).unlink()  # rewritten by the caller (never shared with the source)


class DatasetRegistry(Protocol):
    """Where :func:`build` commits a finished dataset: ``registry.data.DataRegistry`` (git + DVC +
    S3), composed by the caller (``uniss/`` never imports ``registry/``)."""

    def add(self, data_dir: str | Path) -> str:
        """Commit ``data_dir`` as a version; return its tag (``v<N>``)."""
        ...

    def push(self, version: str | None = None) -> str:
        """Upload the registry's objects to its remote."""
        ...


def _register(data_dir: Path, registry: DatasetRegistry, push: bool) -> str:
    tag = registry.add(data_dir)
    if push:
        registry.push()
    return tag


def build(size: str, out_dir: str | Path, *, codec_dir: str | Path | None = None, work_dir: str | Path | None = None,
          params: DataParams | dict | None = None, push: bool = True,
          engines: Any = None, tts: Any = None, cache: StepCache | None = None,
          registry: DatasetRegistry | None = None, codec: Any = None, sources: Any = None,
          codec_preset: str | None = None) -> dict[str, Any]:
    """The whole data build: source -> synthesize -> (fit lite codec) -> tokenize -> validate -> version.

    Args:
        size: ``tiny`` | ``demo``.
        out_dir: the final dataset directory (DATA); the lite codec, when fitted, goes to ``DATA/codec``
            so a data version carries the tokenizer its tokens came from.
        codec_dir: an existing codec (skip fitting; lite codecs are copied to ``DATA/codec``).
        work_dir: intermediate folders (default ``UNISS_HOME/work/<size>``).
        params: ``DataParams`` or overrides of ``params.yaml``.
        push: push the new version to the registry's remote (``dvc push`` to S3).
        engines, tts, cache, codec: injected engines / step cache / loaded codec (defaults: the real ones).
        registry: where the validated dataset is committed as a version (the caller passes
            ``registry.data.DataRegistry()``); None: no version (``version`` is None).
        sources: the user's corpora (:func:`build_source`; None: the demo corpus of ``size``).
        codec_preset: lite codec preset fitted when no codec is given (:func:`fit_codec`); None: the
            pipeline's for ``size`` (``params.yaml`` ``pipeline.<size>.codec``, :func:`uniss.params.pipeline_codec`),
            so a version built here carries the same codec as one the retraining pipeline builds.

    Returns:
        summary: ``rows``, ``version`` (tag or None), ``counts``, ``timings`` (s), ``cache``, ``data_dir``,
        ``codec_preset`` (None when no codec was fitted).

    Raises:
        DataValidationError: the GE gate failed (nothing is versioned then).
    """
    t0 = time.perf_counter()
    p = _params(params)
    cache = cache or default_cache()
    out = Path(out_dir)
    from uniss.unist.ingest import ingest_spec

    spec = ingest_spec(sources)
    label = size if spec is None or spec.is_demo else f"{size}-{spec.digest()}"
    work = Path(work_dir) if work_dir else get_settings().home_dir / "work" / label
    timings: dict[str, float] = {}

    def timed(name: str, fn: Any, *a: Any, **k: Any) -> Any:
        s = time.perf_counter()
        r = fn(*a, **k)
        timings[name] = round(time.perf_counter() - s, 3)
        return r

    timed("source_s", build_source, size, work / "source", params=p, tts=tts or (engines.tts if engines else None),
          cache=cache, sources=sources)
    timed("synthesize_s", synthesize, work / "source", work / "synth", p, engines=engines, cache=cache)
    out.mkdir(parents=True, exist_ok=True)
    codec_out: Path | None = out / "codec"
    fitted_preset: str | None = None
    if codec is not None:
        codec_out = Path(codec_dir) if codec_dir is not None else None
    elif codec_dir is None:
        if codec_preset is None:
            from uniss.params import pipeline_codec

            codec_preset = pipeline_codec(size)
        fitted_preset = codec_preset
        timed("fit_codec_s", fit_codec, work / "synth", codec_out, preset=fitted_preset, cache=cache)
    elif Path(codec_dir).resolve() != codec_out.resolve():
        from uniss.codecs.base import read_manifest as codec_manifest

        if codec_manifest(codec_dir, verify=False).backend == "lite":
            shutil.rmtree(codec_out, ignore_errors=True)
            shutil.copytree(codec_dir, codec_out)
        else:
            codec_out = Path(codec_dir)
    timed("tokenize_s", tokenize, work / "synth", codec_out, out, cache=cache, codec=codec)
    result = timed("validate_s", validate, out)
    tag = None
    if registry is not None:
        tag = timed("version_s", _register, out, registry, push)
    timings["build_total_s"] = round(time.perf_counter() - t0, 3)
    m = read_manifest(out)
    return {"rows": sum(s["rows"] for s in m["shards"]), "version": tag, "data_dir": str(out.resolve()),
            "counts": m["counts"], "timings": timings, "cache": cache.stats.to_dict(),
            "validation": {"passed": result["passed"], "failures": result["failures"]},
            "codec_fingerprint": m.get("codec_fingerprint"),
            "codec_preset": fitted_preset}
