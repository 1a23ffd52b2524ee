"""``uniss data ...``: build, validate, version and roll back UniST datasets (issue "UniST data").

Commands: ``build`` (whole chain), the ``dvc.yaml`` stage commands ``source``, ``synthesize``,
``tokenize``, ``validate``, and the registry commands ``push``, ``log``, ``rollback``.
When an MLflow tracking server is reachable, ``build`` logs a data run (experiment ``uniss-data``):
params, counts, timings, plots and the manifest as artifacts. MLflow lives here, never in ``uniss/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from pipelines.cli._common import (DevShareOption, DirectionOption, LimitOption, SourceOption, SplitOption,
                                   TestShareOption, console, friendly_errors, sources_spec)
from uniss.settings import get_settings, tracking_uri

app = typer.Typer(name="data", help="UniST data: build, validate, version (DVC + S3), roll back.",
                  no_args_is_help=True)

MLFLOW_EXPERIMENT = "uniss-data"


def _default_out(size: str) -> Path:
    return get_settings().home_dir / "data" / size


def _tracking_reachable(uri: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{uri.rstrip('/')}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def log_data_run(summary: dict[str, Any], data_dir: Path, size: str) -> str | None:
    """Log a data run to MLflow when the server answers; returns the run id (or None)."""
    uri = tracking_uri()
    if not _tracking_reachable(uri):
        console.print(f"[yellow]MLflow at {uri} not reachable: data run not logged[/]")
        return None
    import mlflow

    from uniss.unist.dataset import read_manifest

    m = read_manifest(data_dir)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(MLFLOW_EXPERIMENT)
    with mlflow.start_run(run_name=f"data-{size}-{summary.get('version') or m['version']}") as run:
        params = {k: json.dumps(v) if isinstance(v, list | tuple) else v for k, v in _flatten(m["params"]).items()}
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        metrics = {f"count.{k}": float(v) for k, v in _flatten(m["counts"]).items() if isinstance(v, int | float)}
        metrics.update({f"time.{k}": float(v) for k, v in summary["timings"].items()})
        mlflow.log_metrics({k.replace("/", ".").replace("-", "_"): v for k, v in metrics.items()})
        mlflow.set_tags({"data_version": summary.get("version") or "", "content_version": m["version"],
                         "codec_fingerprint": m.get("codec_fingerprint") or "", "size": size,
                         "validation_passed": str(m["validation"]["passed"])})
        if (data_dir / "plots").exists():
            mlflow.log_artifacts(str(data_dir / "plots"), "plots")
        mlflow.log_artifact(str(data_dir / "manifest.json"))
        return run.info.run_id


def _print_counts(summary: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title="UniST steps (kept / dropped)")
    for c in ("step", "in", "kept", "dropped"):
        t.add_column(c)
    for step, c in summary["counts"].get("steps", {}).items():
        t.add_row(step, str(c["in"]), str(c["kept"]), str(c["dropped"]))
    console.print(t)
    subs = summary["counts"].get("subsets", {})
    console.print({k: v for k, v in subs.items() if k.count("/") == 1})


@app.command()
@friendly_errors
def build(
    size: str = typer.Option("tiny", help="tiny (CI) | demo (main job)"),
    codec: Path = typer.Option(None, help="existing codec dir; default: fit a lite codec into DATA/codec"),
    codec_preset: str = typer.Option(None, help="lite codec preset to fit (tiny-v3 | demo-v3 | demo-v3-hifigan | tiny | demo); "
                                     "default: the pipeline's, params.yaml pipeline.<size>.codec"),
    out: Path = typer.Option(None, help="dataset dir (default UNISS_HOME/data/<size>)"),
    register: bool = typer.Option(True, "--register/--no-register", help="commit a version to the DVC registry"),
    push: bool = typer.Option(True, "--push/--no-push", help="dvc push the version to the S3 remote"),
    params_file: Path = typer.Option(None, "--params", help="params.yaml (default: the repository's)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    source: SourceOption = [],  # noqa: B006 - typer option default
    direction: DirectionOption = [],  # noqa: B006
    split: SplitOption = "speaker",
    limit: LimitOption = 0,
    test_share: TestShareOption = 0.2,
    dev_share: DevShareOption = 0.1,
) -> None:
    """Build a UniST dataset end to end (source -> synthesis -> codec -> tokens -> GE gate -> version).

    With ``--source KIND:PATH`` the source is your own corpus (real recordings with transcripts and
    reference translations) instead of the demo corpus; ``--size`` then only picks the codec preset.
    """
    from registry.data import DataRegistry
    from uniss.params import pipeline_codec
    from uniss.unist.params import load_params
    from uniss.unist.steps import build as run

    spec = sources_spec(source, direction, split, limit, test_share, dev_share)
    label = size if not spec or all(s.startswith("demo") for s in spec["sources"]) else "custom"
    out = out or _default_out(label)
    summary = run(size, out, codec_dir=codec, params=load_params(params_file), push=push and register,
                  registry=DataRegistry() if register else None, sources=spec or None,
                  codec_preset=codec_preset or pipeline_codec(size, params_file))
    summary["mlflow_run_id"] = log_data_run(summary, out, label)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    _print_counts(summary)
    console.print(f"[green]built[/] {summary['rows']} samples in {out} version={summary['version']} "
                  f"total {summary['timings']['build_total_s']:.1f} s")


@app.command()
@friendly_errors
def source(
    size: str = typer.Option("tiny", help="tiny | demo"),
    out: Path = typer.Option(..., help="source folder"),
    params_file: Path = typer.Option(None, "--params"),
    source_: SourceOption = [],  # noqa: B006 - typer option default
    direction: DirectionOption = [],  # noqa: B006
    split: SplitOption = "speaker",
    limit: LimitOption = 0,
) -> None:
    """dvc stage 1: generate the demo source corpus (TTS voices, both directions) + LibriVox clips,
    or read your own corpus (``--source KIND:PATH``)."""
    from uniss.unist.params import load_params
    from uniss.unist.steps import build_source

    spec = sources_spec(source_, direction, split, limit, 0.2, 0.1)
    s = build_source(size, out, params=load_params(params_file), sources=spec or None)
    console.print(f"source: {s['rows']} utterances ({s['dropped']} quarantined), {s['real_speech_rows']} real clips")


@app.command()
@friendly_errors
def synthesize(
    source_dir: Path = typer.Argument(..., help="source folder"),
    out: Path = typer.Option(..., help="synthesized dataset folder"),
    params_file: Path = typer.Option(None, "--params"),
) -> None:
    """dvc stage 2: UniST synthesis and filters (General / HQ), quarantine, plots."""
    from uniss.unist.params import load_params
    from uniss.unist.steps import synthesize as run

    s = run(source_dir, out, load_params(params_file))
    _print_counts(s)


@app.command()
@friendly_errors
def tokenize(
    data_dir: Path = typer.Argument(..., help="synthesized dataset"),
    out: Path = typer.Option(..., help="tokenized dataset folder"),
    codec: Path = typer.Option(None, help="codec dir; default: fit a lite codec into OUT/codec"),
    size: str = typer.Option("tiny", help="tiny | demo: fit the codec preset of params.yaml pipeline.<size>.codec"),
    preset: str = typer.Option(None, help="lite codec preset when fitting (tiny-v3 | demo-v3 | demo-v3-hifigan | tiny | demo); "
                               "overrides --size"),
    params_file: Path = typer.Option(None, "--params", help="params.yaml (default: the repository's)"),
    align_words: bool = typer.Option(False, "--align-words", help="also write each side's word alignment "
                                     "({side}_words, {side}_word_starts; Whisper-base forced alignment, ~25x real time "
                                     "on 2 cores), which training with data.interleave_words=true reads"),
) -> None:
    """dvc stage 3: the speaker / linguistic / semantic token streams (cached by codec fingerprint)."""
    from uniss.params import pipeline_codec
    from uniss.unist.steps import fit_codec
    from uniss.unist.steps import tokenize as run

    if codec is None:
        codec = out / "codec"
        fit_codec(data_dir, codec, preset=preset or pipeline_codec(size, params_file))
    s = run(data_dir, codec, out, align_words=align_words)
    console.print(f"tokenized {s['rows']} samples with codec {s['codec_fingerprint'][:12]}")


@app.command()
@friendly_errors
def validate(
    data_dir: Path = typer.Argument(..., help="tokenized dataset"),
    out: Path = typer.Option(None, help="write a validated copy there (default: in place)"),
) -> None:
    """Great Expectations gate; fails (exit 2) listing failing expectations and row ids."""
    from uniss.unist.steps import validate as run

    r = run(data_dir, out)
    console.print(f"[green]passed[/] {r['expectations']} expectations on {r['rows']} rows")


@app.command("real-corpus")
@friendly_errors
def real_corpus(
    out: Path = typer.Argument(..., help="folder to write the corpus into"),
    fmt: str = typer.Option("csv", "--format", help="csv | jsonl (both directions) | librispeech (English only)"),
    per_speaker: int = typer.Option(None, "--per-speaker", min=1, help="at most N recordings per speaker (default all)"),
) -> None:
    """Write the small corpus of real recordings on this machine (Asterisk prompts + LibriVox clips,
    English; gcin-voice Mandarin sentences; reference translations) for ``--source``."""
    from uniss.unist.real import write_real_corpus

    path = write_real_corpus(out, fmt, per_speaker=per_speaker)
    kind = "librispeech" if fmt == "librispeech" else "manifest"
    console.print(f"wrote {path}; use --source {kind}:{path}", highlight=False)


@app.command("import-unist")
@friendly_errors
def import_unist(
    files: list[Path] = typer.Argument(..., help="released UniST Parquet shard(s)"),
    out: Path = typer.Option(None, help="dataset dir (default UNISS_HOME/data/unist-release)"),
    register: bool = typer.Option(True, "--register/--no-register", help="commit a version to the DVC registry"),
    push: bool = typer.Option(True, "--push/--no-push", help="dvc push the version to the S3 remote"),
    params_file: Path = typer.Option(None, "--params"),
) -> None:
    """The released UniST (token ids, no audio) as a gated, versioned token-only dataset in the paper
    layout (phases 2 and 3 train on it; evaluation refuses it: no speech to score)."""
    from registry.data import DataRegistry
    from uniss.unist.params import load_params
    from uniss.unist.released import build_released
    from uniss.unist.steps import validate as run_validate

    out = out or _default_out("unist-release")
    s = build_released([str(f) for f in files], out, params=load_params(params_file))
    r = run_validate(out)
    tag = None
    if register:
        reg = DataRegistry()
        tag = reg.add(out)
        if push:
            reg.push()
    console.print(f"[green]imported[/] {s['rows']} token-only samples into {out}; gate passed "
                  f"({r['expectations']} expectations); version={tag}")


@app.command("push")
@friendly_errors
def push_cmd() -> None:
    """``dvc push`` every version of the data registry to the S3 remote."""
    from registry.data import DataRegistry

    reg = DataRegistry()
    reg.push()
    console.print(f"pushed {len(reg.tags())} version(s) to {reg.remote_url} at {reg.settings.s3_url}")


@app.command("log")
@friendly_errors
def log_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List data versions with counts and shard md5s."""
    from rich.table import Table

    from registry.data import DataRegistry

    rows = DataRegistry().log()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="UniST data versions")
    for c in ("version", "date", "general", "hq", "shards (md5)", "codec"):
        t.add_column(c)
    for r in rows:
        c = r.get("counts", {})
        t.add_row(r["version"], r["date"], str(c.get("total/general", "")), str(c.get("total/hq", "")),
                  " ".join(f"{Path(p).name}:{m[:8]}" for p, m in r.get("shards", {}).items()),
                  (r.get("codec_fingerprint") or "")[:12])
    console.print(t)


@app.command()
@friendly_errors
def rollback(
    version: str = typer.Argument(..., help="version tag, e.g. v1"),
    out: Path = typer.Option(None, help="copy the restored dataset there"),
) -> None:
    """Restore a data version byte-for-byte from the object store (shard md5s verified)."""
    from registry.data import DataRegistry

    path = DataRegistry().checkout(version, out)
    console.print(f"[green]restored[/] {version} at {path} (shard md5s match its manifest)")


def register(root: typer.Typer) -> None:
    """Add the ``data`` group to the root ``uniss`` app."""
    root.add_typer(app, name="data")
