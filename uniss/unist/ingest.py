"""The user's own corpora as a UniST source (issue 19 "Your own data", item 1).

A source is written ``KIND:PATH`` (``uniss data build --source KIND:PATH``, the retrain pipeline's
``sources`` parameter):

- ``demo`` (no path, or ``demo:tiny`` / ``demo:demo``): the built-in demo corpus of the size preset
  (:func:`uniss.unist.sources.build_demo_source`); it cannot be mixed with other kinds.
- ``manifest:FILE``: a CSV / TSV / JSONL manifest (:func:`uniss.unist.readers.read_manifest`).
- ``librispeech:DIR``: a LibriSpeech-layout folder (:func:`uniss.unist.readers.read_librispeech`),
  English; translations from optional ``<speaker>-<chapter>.trans.<tgt>.txt`` files beside each
  transcript file.
- ``covost2:TSV``: a CoVoST 2 TSV named ``covost_v2.<src>_<tgt>.<split>.tsv`` (languages and split
  from the name; ``zh-CN`` is ``zh``) with the Common Voice clips in ``clips/`` beside it.
- ``cvss:DIR``: a folder with CoVoST 2 TSVs (as above, ``clips/`` beside them) and the CVSS TSVs
  ``<split>.tsv`` of the same direction, whose translations replace CoVoST's (Jia et al. 2022).

Records of every source are kept when their direction is among ``directions``, capped at ``limit``
utterances per direction, and split (:func:`speaker_split`): ``speaker`` (default) puts whole
speakers into dev/test so held-out speakers never speak a training row (the GE gate's
``chk_heldout_disjoint`` checks it); ``given`` keeps each reader's own split.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from uniss.unist.errors import UnistError
from uniss.unist.params import LANGUAGES, DataParams
from uniss.unist.readers import SourceRecord, read_covost_tsv, read_cvss_tsv, read_librispeech, read_manifest

#: Source kinds of ``KIND:PATH`` (``demo`` is the built-in corpus).
SOURCE_KINDS = ("demo", "cvss", "covost2", "librispeech", "manifest")
#: Translation directions ``<src>-<tgt>``.
DIRECTIONS = tuple(f"{a}-{b}" for a in LANGUAGES for b in LANGUAGES if a != b)
_COVOST_NAME = re.compile(r"^covost_v2\.(?P<src>[A-Za-z-]+)_(?P<tgt>[A-Za-z-]+)\.(?P<split>train|dev|test)\.tsv$")


class SourceSpec(BaseModel):
    """One ``KIND:PATH`` source.

    Attributes:
        kind: one of :data:`SOURCE_KINDS`.
        path: file or folder (``demo``: the size preset name, or ``""`` for the run's size).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["demo", "cvss", "covost2", "librispeech", "manifest"]
    path: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}" if self.path else self.kind


class IngestSpec(BaseModel):
    """What to build a source corpus from (the pipeline parameter ``sources``; ``{}`` = demo preset).

    Attributes:
        sources: the sources, read in order.
        directions: kept translation directions (``en-zh``, ``zh-en``).
        split: ``speaker`` (whole speakers to dev/test, :func:`speaker_split`) or ``given`` (the
            readers' own split column).
        dev_share / test_share: target share of each direction's utterances in dev / test (speaker split).
        limit: at most this many utterances per direction (0 = all), chosen by a seeded hash of the id.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    sources: tuple[SourceSpec, ...] = Field(min_length=1)
    directions: tuple[str, ...] = DIRECTIONS
    split: Literal["speaker", "given"] = "speaker"
    dev_share: float = Field(default=0.1, ge=0.0, lt=1.0)
    test_share: float = Field(default=0.2, ge=0.0, lt=1.0)
    limit: int = Field(default=0, ge=0)

    @field_validator("directions")
    @classmethod
    def _dirs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [d for d in v if d not in DIRECTIONS]
        if bad or not v:
            raise ValueError(f"directions must be a non-empty subset of {list(DIRECTIONS)}, got {list(v)}")
        return tuple(dict.fromkeys(v))

    @property
    def is_demo(self) -> bool:
        """True when every source is ``demo`` (the built-in corpus)."""
        return all(s.kind == "demo" for s in self.sources)

    def digest(self) -> str:
        """sha256 (16 hex) of the spec: part of the default work-folder name."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def parse_source(text: str, *, check_path: bool = True) -> SourceSpec:
    """``KIND:PATH`` -> :class:`SourceSpec` (``demo`` may stand alone).

    Args:
        text: the option value.
        check_path: require the path to exist (a file for ``manifest``/``covost2``, a folder for
            ``librispeech``/``cvss``).

    Raises:
        UnistError: unknown kind, missing path, or a path that does not exist / is the wrong type.
    """
    kind, sep, path = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in SOURCE_KINDS:
        raise UnistError(f"unknown source kind {kind!r} in {text!r}; expected KIND:PATH with KIND one of {list(SOURCE_KINDS)}")
    path = path.strip()
    if kind == "demo":
        return SourceSpec(kind="demo", path=path)
    if not path:
        raise UnistError(f"source {text!r} has no path; expected {kind}:PATH")
    if check_path:
        p = Path(path).expanduser()
        want_dir = kind in ("librispeech", "cvss")
        if not p.exists():
            raise UnistError(f"{kind} source {str(p)!r} does not exist")
        if want_dir != p.is_dir():
            raise UnistError(f"{kind} source {str(p)!r} must be a {'folder' if want_dir else 'file'}")
        path = str(p.resolve())
    return SourceSpec(kind=kind, path=path)  # type: ignore[arg-type]


def ingest_spec(value: IngestSpec | dict[str, Any] | None) -> IngestSpec | None:
    """A pipeline parameter (``{}`` / None = the demo preset) or a spec -> :class:`IngestSpec` or None.

    Raises:
        UnistError: invalid fields (message lists them).
    """
    if value is None or isinstance(value, IngestSpec):
        return value
    if not value:
        return None
    raw = dict(value)
    raw["sources"] = [parse_source(s, check_path=False) if isinstance(s, str) else s for s in raw.get("sources", [])]
    try:
        return IngestSpec(**raw)
    except ValidationError as e:
        raise UnistError(f"invalid sources spec: {e}") from None


def _lang(code: str) -> str:
    """Common Voice / CoVoST language code -> ``en`` | ``zh`` (``zh-CN`` -> ``zh``)."""
    return code.split("-")[0].lower()


def _covost(tsv: Path) -> list[SourceRecord]:
    m = _COVOST_NAME.match(tsv.name)
    if not m:
        raise UnistError(f"{tsv}: a CoVoST 2 TSV must be named covost_v2.<src>_<tgt>.<split>.tsv")
    return read_covost_tsv(tsv, audio_dir=tsv.parent / "clips", src_lang=_lang(m["src"]), tgt_lang=_lang(m["tgt"]),
                           split=m["split"])  # type: ignore[arg-type]


def read_source(spec: SourceSpec) -> list[SourceRecord]:
    """Every record of one (non-demo) source.

    Raises:
        UnistError / ManifestError: unreadable source (names file, line and field).
    """
    p = Path(spec.path)
    if spec.kind == "manifest":
        return read_manifest(p)
    if spec.kind == "librispeech":
        return read_librispeech(p)
    if spec.kind == "covost2":
        return _covost(p)
    if spec.kind == "cvss":
        tsvs = sorted(p.glob("covost_v2.*.tsv"))
        if not tsvs:
            raise UnistError(f"cvss source {p}: no covost_v2.<src>_<tgt>.<split>.tsv beside the CVSS TSVs")
        out: list[SourceRecord] = []
        for t in tsvs:
            recs = _covost(t)
            cvss = p / f"{_COVOST_NAME.match(t.name)['split']}.tsv"  # type: ignore[index]
            out += read_cvss_tsv(cvss, covost=recs, tgt_lang=recs[0].target_language()) if cvss.exists() and recs else recs
        return out
    raise UnistError(f"source kind {spec.kind!r} has no reader (demo is built by build_demo_source)")


def _h(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def speaker_split(records: list[SourceRecord], *, dev_share: float, test_share: float, seed: int = 0) -> list[SourceRecord]:
    """Assign ``split`` by speaker, per direction, deterministically.

    Rule: a direction's speakers are visited in the order of ``sha256(seed:speaker)``; a speaker goes
    to ``test`` when its utterances still fit within ``ceil(test_share * n)``, else to ``dev`` when
    they fit within ``ceil(dev_share * n)``, else to ``train``. A direction with at least two
    speakers and no test speaker then sends its smallest speaker (fewest utterances, hash order on
    ties) to test, so every such direction has a held-out speaker. A one-speaker direction is all
    ``train``. Dev/test speakers therefore never speak a training row of their direction.

    Args:
        records: source records (any split).
        dev_share / test_share: target shares of utterances.
        seed: hash seed (``params.seed``).

    Returns:
        the records with ``split`` replaced, in input order.
    """
    by_dir: dict[tuple[str, str], dict[str, int]] = {}
    for r in records:
        spk = by_dir.setdefault((r.language, r.target_language()), {})
        spk[r.speaker] = spk.get(r.speaker, 0) + 1
    assign: dict[tuple[str, str, str], str] = {}
    for d, spk in by_dir.items():
        n = sum(spk.values())
        cap = {"test": math.ceil(test_share * n), "dev": math.ceil(dev_share * n)}
        used = {"test": 0, "dev": 0}
        for s in sorted(spk, key=lambda s: _h(seed, s)):
            split = next((k for k in ("test", "dev") if used[k] + spk[s] <= cap[k]), "train")
            if split != "train":
                used[split] += spk[s]
            assign[(*d, s)] = split
        if len(spk) >= 2 and not used["test"]:
            small = min(spk, key=lambda s: (spk[s], _h(seed, s)))
            assign[(*d, small)] = "test"
        if len(spk) >= 2 and all(assign[(*d, s)] != "train" for s in spk):  # keep one training speaker
            big = max(spk, key=lambda s: (spk[s], _h(seed, s)))
            assign[(*d, big)] = "train"
    return [r.model_copy(update={"split": assign[(r.language, r.target_language(), r.speaker)]}) for r in records]


def select_records(records: list[SourceRecord], spec: IngestSpec, *, seed: int = 0) -> list[SourceRecord]:
    """Keep ``spec.directions``, cap each direction at ``spec.limit`` (seeded hash of the id), split.

    Raises:
        UnistError: duplicate ids across sources, or nothing left.
    """
    seen: set[str] = set()
    for r in records:
        if r.id in seen:
            raise UnistError(f"duplicate utterance id {r.id!r} across sources")
        seen.add(r.id)
    keep = [r for r in records if f"{r.language}-{r.target_language()}" in spec.directions]
    if spec.limit:
        out: list[SourceRecord] = []
        for d in spec.directions:
            sub = sorted((r for r in keep if f"{r.language}-{r.target_language()}" == d), key=lambda r: _h(seed, r.id))
            out += sub[: spec.limit]
        keep = sorted(out, key=lambda r: r.id)
    if not keep:
        raise UnistError(f"no utterance of directions {list(spec.directions)} in {[str(s) for s in spec.sources]}")
    if spec.split == "speaker":
        keep = speaker_split(keep, dev_share=spec.dev_share, test_share=spec.test_share, seed=seed)
    return keep


def build_external_source(spec: IngestSpec, out_dir: str | Path, *, params: DataParams) -> dict[str, Any]:
    """Read, select and split the spec's sources and write a source folder (``source.parquet``,
    ``quarantine.parquet``, ``source.json``; :func:`uniss.unist.sources.write_source`).

    Returns:
        summary: ``rows``, ``dropped``, ``counts`` per direction/split, ``speakers`` per split,
        ``sources``, ``md5``, ``timings``.

    Raises:
        UnistError: a ``demo`` source mixed in, unreadable sources, nothing left.
    """
    from uniss.unist.sources import write_source

    if any(s.kind == "demo" for s in spec.sources):
        raise UnistError("the demo source cannot be mixed with other sources; build it alone (--source demo)")
    t0 = time.perf_counter()
    records = [r for s in spec.sources for r in read_source(s)]
    kept = select_records(records, spec, seed=params.seed)
    summary = write_source(kept, out_dir, params=params)
    import pandas as pd

    table = pd.read_parquet(Path(out_dir) / "source.parquet", columns=["language", "tgt_lang", "split", "speaker"])
    counts = {f"{a}-{b}/{s}": int(n) for (a, b, s), n in table.groupby(["language", "tgt_lang", "split"]).size().items()}
    speakers = {s: sorted(set(table.loc[table["split"] == s, "speaker"])) for s in ("train", "dev", "test")}
    summary.update({"size": "external", "seed": params.seed, "sources": [str(s) for s in spec.sources],
                    "spec": spec.model_dump(mode="json"), "counts": counts, "speakers": speakers,
                    "real_speech_rows": 0, "timings": {"source_s": round(time.perf_counter() - t0, 3)}})
    (Path(out_dir) / "source.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


__all__ = ["SOURCE_KINDS", "DIRECTIONS", "SourceSpec", "IngestSpec", "parse_source", "ingest_spec", "read_source",
           "speaker_split", "select_records", "build_external_source"]
