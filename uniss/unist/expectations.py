"""The Great Expectations gate over the UniST sample table (GE 1.x, ephemeral context).

Expectations (suite ``unist_samples``):
- ``id`` non-null and unique;
- ``src_lang``/``tgt_lang`` in the configured languages, ``split`` in train/dev/test;
- ``general`` true and ``ratio`` within ``general_ratio`` (paper §4: [0.5, 2.0]);
  ``hq`` rows: VAD-trimmed ``hq_ratio`` within ``hq_ratio`` (paper: [0.7, 1.5]);
- ``src_wer``/``tgt_wer`` within the per-language thresholds of ``params.yaml``;
- ``speed_index == uniss.vocab.speed_index(ratio)`` (ARCHITECTURE.md speed rule);
- token counts consistent with duration: semantic ~ 50 tok/s, linguistic ~ 12.5 tok/s (paper
  §3.1.2), within ``token_rate_tolerance`` (relative) + ``token_count_slack`` tokens;
- exactly 32 speaker tokens per side (paper §3.1.2, BiCodec global tokens);
- both audio cells decode as 16 kHz mono FLAC whose length matches the stored duration;
- no dev/test row's normalised source or target text occurs in the train split of its direction
  (contamination gate);
- every direction with train rows has at least one row in each of :data:`HELDOUT_SPLITS` (the test
  split: evaluation would otherwise find nothing to score in that direction after hours of training;
  :func:`missing_heldout` names the direction and its split counts);
- data with voice columns: ``voice_preserved`` a non-null bool, ``voice_set`` in seen/heldout/real,
  held-out voices only in the test split, and no recorded dev/test speaker among the training
  speakers (speaker-disjoint evaluation, :func:`heldout_disjoint`).

Checks that GE has no built-in for are computed here as boolean columns (``chk_*``) and fed to GE as
``expect_column_values_to_be_in_set([True])``, so every failure still comes out of GE with the
unexpected rows' ids. GE 1.x returns a failed result instead of raising (FACTS.md): a failed result
becomes :class:`DataValidationError` listing the failing expectations and row ids.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from uniss.audio import SAMPLE_RATE_HZ
from uniss.unist.errors import DataValidationError
from uniss.unist.io import AudioCellError, decode_flac
from uniss.unist.params import VOICE_SETS, DataParams
from uniss.unist.tokenize import TOKEN_COLUMNS
from uniss.vocab import N_SPEAKER_TOKENS, speed_index

SUITE_NAME = "unist_samples"
#: Token rates (tokens/s), paper §3.1.2.
SEMANTIC_RATE_HZ = 50.0
LINGUISTIC_RATE_HZ = 12.5
#: Max row ids listed per failing expectation.
MAX_IDS = 50
#: Stored duration vs decoded audio length tolerance (s): one 20 ms frame.
DURATION_TOLERANCE_S = 0.02
#: Held-out splits every direction with train rows must have rows in (``chk_direction_heldout``).
#: Only ``test``: it is what the pipeline evaluates (``eval_split`` default) and the gate judges. Dev is
#: read by nothing by default (training has no dev loop), and the speaker split of the user's corpora
#: legitimately leaves a two-speaker direction without dev rows (one test speaker, one training
#: speaker; ``uniss.unist.ingest.speaker_split``), so requiring dev would refuse good data. A caller
#: that evaluates on dev passes ``heldout_splits=("dev", "test")`` to :func:`validate_samples`.
HELDOUT_SPLITS = ("test",)


def _speed_ok(ratio: Any, idx: Any) -> bool:
    try:
        return int(idx) == speed_index(float(ratio))
    except Exception:  # noqa: BLE001 - VocabError / bad types: the check fails
        return False


def _count_ok(tokens: Any, duration_s: Any, rate: float, params: DataParams) -> bool:
    try:
        n, want = len(tokens), float(duration_s) * rate
    except (TypeError, ValueError):
        return False
    return abs(n - want) <= params.token_rate_tolerance * want + params.token_count_slack


def _audio_ok(cell: Any, duration_s: Any) -> bool:
    try:
        wav = decode_flac(cell)
        return abs(len(wav) / SAMPLE_RATE_HZ - float(duration_s)) <= DURATION_TOLERANCE_S
    except (AudioCellError, TypeError, ValueError):
        return False


def contamination_free(df: pd.DataFrame) -> list[bool]:
    """Per row: False when it is a dev/test row whose normalised source or target text (App. C.1
    normalisation, ``uniss.metrics.normalize_for_bleu``) also occurs as that side's text of a train
    row of the same direction (test-set contamination: the public UniSS reproduction found 1,705 of
    its normalised test texts in its training data). Train rows are always True.
    """
    from uniss.metrics import normalize_for_bleu

    def norm(text: Any, lang: Any) -> str:
        try:
            return normalize_for_bleu(str(text), str(lang))
        except Exception:  # noqa: BLE001 - an unknown language fails its own expectation
            return str(text)

    src = [norm(t, lang) for t, lang in zip(df["src_text"], df["src_lang"])]
    tgt = [norm(t, lang) for t, lang in zip(df["tgt_text"], df["tgt_lang"])]
    direction = list(zip(df["src_lang"], df["tgt_lang"]))
    train_src: set[tuple] = set()
    train_tgt: set[tuple] = set()
    for i, sp in enumerate(df["split"]):
        if sp == "train":
            train_src.add((direction[i], src[i]))
            train_tgt.add((direction[i], tgt[i]))
    return [sp == "train" or ((direction[i], src[i]) not in train_src and (direction[i], tgt[i]) not in train_tgt)
            for i, sp in enumerate(df["split"])]


def _directions(df: pd.DataFrame) -> list[str]:
    """Per row: its direction ``<src_lang>-<tgt_lang>`` (``zh-en``)."""
    return [f"{a}-{b}" for a, b in zip(df["src_lang"], df["tgt_lang"])]


def split_counts(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Rows per direction (``en-zh``) and split (``train``/``dev``/``test``), directions sorted;
    a split with no row of a direction is absent from its dict."""
    out: dict[str, dict[str, int]] = {}
    for d, sp in zip(_directions(df), df["split"]):
        c = out.setdefault(d, {})
        c[str(sp)] = c.get(str(sp), 0) + 1
    return dict(sorted(out.items()))


def _heldout_gaps(df: pd.DataFrame, splits: tuple[str, ...]) -> dict[str, list[str]]:
    """Direction -> one line per required held-out split it lacks although it has train rows
    (``direction zh-en has 12 train rows but 0 test rows``); directions without a gap are absent."""
    gaps: dict[str, list[str]] = {}
    for d, c in split_counts(df).items():
        lines = [f"direction {d} has {c['train']} train rows but 0 {sp} rows"
                 for sp in splits if c.get("train", 0) and not c.get(sp, 0)]
        if lines:
            gaps[d] = lines
    return gaps


def missing_heldout(df: pd.DataFrame, splits: tuple[str, ...] = HELDOUT_SPLITS) -> list[str]:
    """One line per (direction, split) where a direction has train rows but no row in a required
    held-out split, e.g. ``direction zh-en has 12 train rows but 0 test rows`` (the source re-ASR
    filter can drop every test row of a direction, e.g. all the test recordings of one speaker).
    Empty when every direction with train rows can be evaluated.

    Args:
        df: sample table (``src_lang``, ``tgt_lang``, ``split``).
        splits: the held-out splits required (default :data:`HELDOUT_SPLITS`).
    """
    return [line for lines in _heldout_gaps(df, splits).values() for line in lines]


def heldout_present(df: pd.DataFrame, splits: tuple[str, ...] = HELDOUT_SPLITS) -> list[bool]:
    """Per row: False for every row of a direction that has train rows but no row in one of
    ``splits`` (:func:`missing_heldout` gives the message with the counts)."""
    bad = _heldout_gaps(df, splits)
    return [d not in bad for d in _directions(df)]


def check_columns(df: pd.DataFrame, params: DataParams, *,
                  heldout_splits: tuple[str, ...] = HELDOUT_SPLITS) -> pd.DataFrame:
    """The derived boolean check columns (``chk_*``), one per custom rule.

    Args:
        df: sample table.
        params: thresholds and tolerances.
        heldout_splits: held-out splits every direction with train rows must have rows in
            (``chk_direction_heldout``; default :data:`HELDOUT_SPLITS`).

    Returns:
        a copy of ``df`` with ``chk_hq_ratio``, ``chk_src_wer``, ``chk_tgt_wer``, ``chk_speed``,
        ``chk_tokens``, ``chk_speaker32``, ``chk_audio``, ``chk_no_contamination``
        (:func:`contamination_free`), ``chk_direction_heldout`` (:func:`heldout_present`) (bool), and
        ``chk_heldout_disjoint`` when ``df`` has a ``voice_set`` column (held-out voices speak only
        test rows and no training or dev row speaks in one of them).
    """
    out = df.copy()
    lo, hi = params.hq_ratio
    out["chk_hq_ratio"] = [(not bool(h)) or (r is not None and lo <= float(r) <= hi)
                           for h, r in zip(df["hq"], df["hq_ratio"])]
    for side, lang_col in (("src", "src_lang"), ("tgt", "tgt_lang")):
        thr = params.src_max_error if side == "src" else params.tgt_max_error
        out[f"chk_{side}_wer"] = [w is not None and np.isfinite(float(w)) and float(w) <= thr.get(lang, -1.0)
                                  for w, lang in zip(df[f"{side}_wer"], df[lang_col])]
    out["chk_speed"] = [_speed_ok(r, i) for r, i in zip(df["ratio"], df["speed_index"])]
    has_tokens = all(c in df for c in TOKEN_COLUMNS)
    if has_tokens:
        out["chk_tokens"] = [
            _count_ok(r.src_semantic, r.src_duration_s, SEMANTIC_RATE_HZ, params)
            and _count_ok(r.tgt_semantic, r.tgt_duration_s, SEMANTIC_RATE_HZ, params)
            and _count_ok(r.src_linguistic, r.src_duration_s, LINGUISTIC_RATE_HZ, params)
            and _count_ok(r.tgt_linguistic, r.tgt_duration_s, LINGUISTIC_RATE_HZ, params)
            for r in df.itertuples(index=False)]
        out["chk_speaker32"] = [len(a) == N_SPEAKER_TOKENS and len(b) == N_SPEAKER_TOKENS
                                for a, b in zip(df["src_speaker"], df["tgt_speaker"])]
    else:
        out["chk_tokens"] = False
        out["chk_speaker32"] = False
    out["chk_audio"] = [_audio_ok(a, da) and _audio_ok(b, db) for a, da, b, db in
                        zip(df["src_audio"], df["src_duration_s"], df["tgt_audio"], df["tgt_duration_s"])]
    out["chk_no_contamination"] = contamination_free(df)
    out["chk_direction_heldout"] = heldout_present(df, heldout_splits)
    if "voice_set" in df:
        out["chk_heldout_disjoint"] = heldout_disjoint(df)
    return out


def heldout_disjoint(df: pd.DataFrame) -> list[bool]:
    """Per row: False when it breaks speaker-disjoint evaluation (needs ``voice_set``, ``split``, ``src_voice``).

    - a ``heldout`` (synthetic voice kept out of training) row outside the test split, or a non-test
      row spoken in a held-out voice;
    - a recorded speaker (``voice_set == "real"``, ``src_voice`` = the corpus speaker) of a dev/test
      row who also speaks a training row: both the dev/test row and those training rows fail
      (issue 19: held-out speakers are disjoint from training speakers; the speaker split of
      ``uniss.unist.ingest.speaker_split`` guarantees it for the user's corpora).
    """
    vs_, sp_, v_ = df["voice_set"].fillna(""), df["split"], df["src_voice"]
    heldout = set(v_[vs_ == "heldout"])
    train_voices = set(v_[sp_ == "train"])
    real_eval = set(v_[(vs_ == "real") & (sp_ != "train")])
    return [(vs != "heldout" or sp == "test") and not (sp != "test" and v in heldout)
            and not (vs == "real" and sp != "train" and v in train_voices)
            and not (sp == "train" and v in real_eval)
            for vs, sp, v in zip(vs_, sp_, v_)]


def token_only_checks(df: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    """Check columns of a token-only dataset (released UniST, no audio; issue 19 item 2).

    Returns:
        a copy with ``chk_speed``, ``chk_speaker32`` (32 source speaker tokens), ``chk_token_range``
        (every token of every column within its codebook ``sizes``), ``chk_s2st_tokens`` (non-empty
        source linguistic and target semantic tokens), ``chk_text`` (non-empty texts) and
        ``chk_no_contamination``.
    """
    fam = {"speaker": sizes["speaker"], "linguistic": sizes["linguistic"], "semantic": sizes["semantic"]}

    def in_range(r: Any) -> bool:
        for col in TOKEN_COLUMNS:
            n = fam[col.split("_", 1)[1]]
            v = getattr(r, col)
            if v is None or any(not 0 <= int(x) < n for x in v):
                return False
        return True

    out = df.copy()
    out["chk_speed"] = [_speed_ok(r, i) for r, i in zip(df["ratio"], df["speed_index"])]
    out["chk_speaker32"] = [v is not None and len(v) == N_SPEAKER_TOKENS for v in df["src_speaker"]]
    out["chk_token_range"] = [in_range(r) for r in df.itertuples(index=False)]
    out["chk_s2st_tokens"] = [a is not None and b is not None and len(a) > 0 and len(b) > 0
                              for a, b in zip(df["src_linguistic"], df["tgt_semantic"])]
    out["chk_text"] = [bool(str(a or "").strip()) and bool(str(b or "").strip()) for a, b in zip(df["src_text"], df["tgt_text"])]
    out["chk_no_contamination"] = contamination_free(df)
    return out


def build_token_only_suite(params: DataParams) -> Any:
    """The GE suite of a token-only dataset: ids, languages, splits, General ratio range and the
    :func:`token_only_checks` columns (no audio, WER or duration-rate expectations: the release has none;
    no held-out split expectation either: the release is a training corpus, mostly without a split
    column, and evaluation refuses token-only data)."""
    import great_expectations as gx

    E = gx.expectations
    lo, hi = params.general_ratio
    exps = [E.ExpectColumnValuesToNotBeNull(column="id"), E.ExpectColumnValuesToBeUnique(column="id"),
            E.ExpectColumnValuesToBeInSet(column="src_lang", value_set=list(params.languages)),
            E.ExpectColumnValuesToBeInSet(column="tgt_lang", value_set=list(params.languages)),
            E.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "dev", "test"]),
            E.ExpectColumnValuesToBeBetween(column="ratio", min_value=lo, max_value=hi)]
    exps += [E.ExpectColumnValuesToBeInSet(column=c, value_set=[True]) for c in
             ("chk_speed", "chk_speaker32", "chk_token_range", "chk_s2st_tokens", "chk_text", "chk_no_contamination")]
    suite = gx.ExpectationSuite(name=SUITE_NAME + "_token_only")
    for e in exps:
        suite.add_expectation(e)
    return suite


def build_suite(params: DataParams, *, voice_columns: bool = False) -> Any:
    """The GE ``ExpectationSuite`` (not yet added to a context).

    Args:
        voice_columns: add the voice expectations (data with ``voice_preserved`` / ``voice_set``
            columns; issue "Voice-preserving ... UniST"): ``voice_preserved`` is a non-null bool,
            ``voice_set`` one of ``uniss.unist.params.VOICE_SETS`` (or ``""`` for unlabelled
            ingested rows), held-out voices disjoint from training (``chk_heldout_disjoint``).
    """
    import great_expectations as gx

    E = gx.expectations
    lo, hi = params.general_ratio
    exps = [
        E.ExpectColumnValuesToNotBeNull(column="id"),
        E.ExpectColumnValuesToBeUnique(column="id"),
        E.ExpectColumnValuesToBeInSet(column="src_lang", value_set=list(params.languages)),
        E.ExpectColumnValuesToBeInSet(column="tgt_lang", value_set=list(params.languages)),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "dev", "test"]),
        E.ExpectColumnValuesToBeInSet(column="general", value_set=[True]),
        E.ExpectColumnValuesToNotBeNull(column="ratio"),
        E.ExpectColumnValuesToBeBetween(column="ratio", min_value=lo, max_value=hi),
    ]
    exps += [E.ExpectColumnValuesToBeInSet(column=c, value_set=[True]) for c in
             ("chk_hq_ratio", "chk_src_wer", "chk_tgt_wer", "chk_speed", "chk_tokens", "chk_speaker32", "chk_audio",
              "chk_no_contamination", "chk_direction_heldout")]
    if voice_columns:
        exps += [E.ExpectColumnValuesToBeInSet(column="voice_preserved", value_set=[True, False]),
                 E.ExpectColumnValuesToNotBeNull(column="voice_preserved"),
                 E.ExpectColumnValuesToBeInSet(column="voice_set", value_set=[*VOICE_SETS, ""]),
                 E.ExpectColumnValuesToBeInSet(column="chk_heldout_disjoint", value_set=[True])]
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for e in exps:
        suite.add_expectation(e)
    return suite


def validate_samples(df: pd.DataFrame, params: DataParams, *, token_only_sizes: dict[str, int] | None = None,
                     heldout_splits: tuple[str, ...] = HELDOUT_SPLITS) -> dict[str, Any]:
    """Run the suite on the sample table.

    Args:
        df: sample table (docs/design.md columns, token columns included).
        params: data params.
        token_only_sizes: codebook sizes of a token-only dataset (released UniST, no audio): run
            :func:`build_token_only_suite` instead of the full suite.
        heldout_splits: held-out splits every direction with train rows must have rows in (full
            suite only; default :data:`HELDOUT_SPLITS`, the test split).

    Returns:
        ``{"passed", "suite", "expectations", "failures": [{"expectation", "column",
        "unexpected_count", "row_ids"}], "statistics", "validated_at", "gx_version"}``; a failure of
        ``chk_direction_heldout`` also carries ``message`` (:func:`missing_heldout`: ``direction zh-en
        has 12 train rows but 0 test rows``). Never raises on a failed validation (see
        :func:`raise_on_failure`).
    """
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    messages: dict[str, str] = {}  # check column -> the message of its failure
    if token_only_sizes is None:
        table = check_columns(df, params, heldout_splits=heldout_splits)
        messages["chk_direction_heldout"] = "; ".join(missing_heldout(df, heldout_splits))
    else:
        table = token_only_checks(df, token_only_sizes)
    # GE cannot hash list/bytes cells for its own metrics: give it only the scalar columns.
    scalar = table[[c for c in table.columns if c not in (*TOKEN_COLUMNS, "src_audio", "tgt_audio")]]
    ctx = gx.get_context(mode="ephemeral")
    batch = (ctx.data_sources.add_pandas("unist").add_dataframe_asset("samples")
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": scalar}))
    suite = ctx.suites.add(build_suite(params, voice_columns="voice_set" in df and "voice_preserved" in df)
                           if token_only_sizes is None else build_token_only_suite(params))
    res = batch.validate(suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]})
    failures = []
    for r in res.results:
        if r.success:
            continue
        cfg = r.expectation_config
        info = r.result or {}
        ids = [str(x.get("id")) if isinstance(x, dict) else str(x) for x in (info.get("unexpected_index_list") or [])]
        failures.append({
            "expectation": cfg.type, "column": cfg.kwargs.get("column"),
            "unexpected_count": int(info.get("unexpected_count") or len(ids)),
            "row_ids": sorted(set(ids))[:MAX_IDS],
            **({"message": messages[cfg.kwargs["column"]]} if messages.get(cfg.kwargs.get("column")) else {}),
            **({"exception": str(r.exception_info.get("exception_message"))}
               if getattr(r, "exception_info", None) and r.exception_info.get("raised_exception") else {}),
        })
    stats = res.statistics or {}
    return {
        "passed": bool(res.success), "suite": suite.name, "expectations": len(res.results),
        "failures": failures,
        "statistics": {k: float(v) if v is not None else None for k, v in stats.items()},
        "rows": int(len(df)), "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "gx_version": gx.__version__,
    }


def format_failures(failures: list[dict[str, Any]]) -> str:
    """One line per failing expectation: ``expectation(column): n rows: id1, id2, ...``, or
    ``expectation(column): message`` for a failure that carries one (a direction without test rows:
    the counts say more than its rows' ids)."""
    return "; ".join(
        f"{f['expectation']}: shards {', '.join(f['shards'])}" if f.get("shards") else
        f"{f['expectation']}({f['column']}): {f['message']}" if f.get("message") else
        f"{f['expectation']}({f['column']}): {f['unexpected_count']} rows: {', '.join(f['row_ids'])}"
        for f in failures)


def raise_on_failure(result: dict[str, Any]) -> None:
    """Turn a failed validation result into :class:`DataValidationError` (listing expectations and ids)."""
    if not result["passed"]:
        raise DataValidationError(f"UniST data failed {len(result['failures'])} expectation(s): "
                                  f"{format_failures(result['failures'])}", result["failures"])
