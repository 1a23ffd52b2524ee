"""``uniss retrain`` (the main job) and ``uniss pipeline compile|submit|ablation``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from pipelines.cli._common import (DevShareOption, DirectionOption, LimitOption, SourceOption, SplitOption,
                                   TestShareOption, console, friendly_errors, sources_spec)
from uniss.bundle import RECIPES
from uniss.settings import MODEL_NAME
from pipelines.runner import LocalRunResult, compile_pipeline, retrain_arguments, run_local, submit

app = typer.Typer(help="Compile, submit and run the Kubeflow pipelines.", no_args_is_help=True)


def _print_summary(res: LocalRunResult) -> None:
    t = Table(title="pipeline steps (nested MLflow runs; steps served from cache are not re-run)")
    t.add_column("step")
    t.add_column("wall s", justify="right")
    t.add_column("MLflow run")
    for s in res.steps:
        t.add_row(str(s["step"]), f"{s['wall_s']:.1f}" if s["wall_s"] is not None else "-", s["run_id"])
    if res.steps:
        console.print(t)
    console.print(f"[bold]total wall time:[/] {res.wall_s:.1f} s")
    if res.parent_run_id:
        console.print(f"[bold]MLflow run:[/] {res.run_url}")
    if res.log_dir:
        console.print(f"[bold]step logs:[/] {res.log_dir}", highlight=False)
    s = res.summary
    if s:
        console.print(f"[bold]data version:[/] {s.get('data_version')}")
        console.print(f"[bold]registered model version:[/] {MODEL_NAME} v{s.get('model_version')}")
        if s.get("promoted"):
            console.print("[green]promoted to champion[/] (passed the evaluation gate)")
        else:
            console.print("[yellow]not promoted[/] (stays challenger): " + "; ".join(s.get("reasons", [])))
        if s.get("serve_command"):
            console.print(f"[bold]serve it:[/] {s['serve_command']}")


@friendly_errors
def retrain(
    local: bool = typer.Option(True, "--local/--cluster", help="run here with kfp.local (embedded stack) or submit to a KFP cluster"),
    size: str = typer.Option("demo", help="data/model preset: tiny (CI, minutes) | demo (main job)"),
    data_version: str = typer.Option("", help="reuse this data version tag instead of building new data"),
    override: list[str] = typer.Option([], "--override", "-o", help="training override key=value (repeatable)"),
    eval_limit: int = typer.Option(0, help="evaluate at most N utterances per direction (0 = preset default / all)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="re-run every step"),
    host: str = typer.Option(None, help="KFP API endpoint (with --cluster)"),
    as_json: bool = typer.Option(False, "--json", help="print the run summary as JSON at the end"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="stream every step's full output (kfp executor logs) instead of the live step view"),
    source: SourceOption = [],  # noqa: B006 - typer option default
    direction: DirectionOption = [],  # noqa: B006
    split: SplitOption = "speaker",
    limit: LimitOption = 0,
    test_share: TestShareOption = 0.2,
    dev_share: DevShareOption = 0.1,
    recipe: str = typer.Option("uniss", "--recipe", help="uniss (3-phase UniSS training) | mslm (the MSLM-S2ST baseline, one phase on <model_size>_mslm.yaml) | s2st-omni (S2ST-Omni: UniSS phase 1 as its LLM, then two stages on <model_size>_omni_stage{1,2}.yaml)"),
) -> None:
    """Trigger end-to-end retraining: UniST data -> 3-phase training -> evaluation -> gated promotion -> deploy.

    ``--source KIND:PATH`` trains on your own corpus (the pipeline parameter ``sources``, so a
    ``--cluster`` run takes it too: there the paths must be readable by the pipeline's pods).
    ``--recipe mslm`` trains the MSLM-S2ST baseline (issue 20) in place of the three phases,
    ``--recipe s2st-omni`` the two S2ST-Omni stages; the evaluation, gate, registration and deployment
    steps are the same.
    """
    if recipe not in RECIPES:
        raise typer.BadParameter(f"--recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    spec = sources_spec(source, direction, split, limit, test_share, dev_share)
    args = retrain_arguments(size, data_version=data_version, overrides=override, eval_limit=eval_limit,
                             sources=spec or None)
    if not local:
        if not host:
            raise typer.BadParameter("--cluster needs --host URL")
        run_id = submit("retrain", host, args, enable_caching=not no_cache, recipe=recipe)
        console.print(f"submitted KFP run {run_id} to {host}")
        return
    console.rule(f"[bold]uniss retrain --local --size {size}" + ("" if recipe == "uniss" else f" --recipe {recipe}"))
    res = run_local("retrain", args, enable_caching=not no_cache, verbose=verbose, console=console, recipe=recipe)
    _print_summary(res)
    if as_json:
        print(json.dumps({"wall_s": res.wall_s, "parent_run_id": res.parent_run_id, "summary": res.summary,
                          "steps": res.steps}, indent=2))


@app.command("compile")
@friendly_errors
def compile_cmd(
    output: Path = typer.Option(Path("retrain.yaml"), "-o", "--output", help="where to write the KFP YAML"),
    pipeline: str = typer.Option("retrain", help="retrain | ablation"),
    model_size: str = typer.Option("tiny", help="retrain: default model size (tiny | 0_5b | 1_5b)"),
    nodes: int = typer.Option(None, min=1, help="retrain: GPU nodes per training TrainJob (default: the phase config's cluster.nodes; 1.5B: 2)"),
    gpus_per_node: int = typer.Option(None, min=1, help="retrain: GPUs = ranks per node (default: the phase config's cluster.gpus_per_node; 1.5B: 8)"),
) -> None:
    """Compile a pipeline for a cluster: each training phase as a Kubeflow Trainer TrainJob of
    NODES x GPUS_PER_NODE GPUs, evaluation on the GPU pool, the S3 secret and checkpoint PVC."""
    path = compile_pipeline(pipeline, output, model_size=model_size, nodes=nodes, gpus_per_node=gpus_per_node)
    console.print(f"wrote {path}")


def parse_param(text: str) -> tuple[str, Any]:
    """One ``--param`` item ``key=VALUE`` -> ``(key, value)``.

    Rules (this CLI's own convention for KFP pipeline arguments):

    - ``key`` is the text before the first ``=``, stripped; it must be a Python identifier (KFP
      pipeline parameters are the pipeline function's argument names).
    - ``VALUE`` (everything after the first ``=``, may contain ``=``) is parsed with ``json.loads``.
    - A ``VALUE`` that is not JSON is kept as a plain string (``data_version=v3`` -> ``"v3"``;
      ``key=`` -> ``""``), unless it starts with ``{``, ``[`` or ``"``: that is meant as JSON and
      malformed, so it is rejected rather than silently passed as a string.

    Raises:
        typer.BadParameter: no ``=``, an empty or non-identifier key, or malformed JSON.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep:
        raise typer.BadParameter(f"{text!r} has no '='; expected key=VALUE, e.g. eval_limit=20")
    if not key:
        raise typer.BadParameter(f"{text!r} has an empty key; expected key=VALUE, e.g. eval_limit=20")
    if not key.isidentifier():
        raise typer.BadParameter(f"key {key!r} in {text!r} is not a pipeline parameter name (letters, digits, _)")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError as e:
        if raw.lstrip()[:1] in ("{", "[", '"'):
            raise typer.BadParameter(f"value of {key!r} is malformed JSON ({e.msg} at char {e.pos}): {raw!r}") from None
        return key, raw


def parse_params(values: list[str]) -> list[tuple[str, Any]]:
    """typer callback of ``--param``: each ``key=VALUE`` item -> ``(key, value)`` (see :func:`parse_param`).

    Raises:
        typer.BadParameter: the first malformed item (the CLI exits with code 2 and names ``--param``).
    """
    return [parse_param(v) for v in values or []]


@app.command("submit")
@friendly_errors
def submit_cmd(
    host: str = typer.Option(..., help="KFP API endpoint, e.g. https://kfp.example.com/pipeline"),
    pipeline: str = typer.Option("retrain", help="retrain | ablation"),
    size: str = typer.Option("demo", help="preset for retrain arguments"),
    param: list[str] = typer.Option(
        [], "--param", callback=parse_params, metavar="KEY=VALUE",
        help="pipeline argument key=VALUE (repeatable; a later key wins). VALUE is parsed as JSON "
             "(3, true, null, [1,2], {\"a\":1}, \"text\"); a value that is not JSON and does not start "
             "with { [ or \" is taken as a plain string (data_version=v3)."),
    namespace: str = typer.Option(None, help="Kubeflow profile namespace"),
) -> None:
    """Compile and submit a pipeline run to Kubeflow Pipelines."""
    args = retrain_arguments(size) if pipeline == "retrain" else {}
    args.update(param)  # type: ignore[arg-type]  # parse_params turned each item into a (key, value) pair
    run_id = submit(pipeline, host, args, namespace=namespace)
    console.print(f"submitted KFP run {run_id} to {host}")


@app.command("ablation")
@friendly_errors
def ablation_cmd(
    data_version: str = typer.Option(..., help="data version tag every variant trains on"),
    eval_limit: int = typer.Option(0, help="evaluate at most N utterances per direction"),
    override: list[str] = typer.Option([], "--override", "-o", help="training override for every variant"),
    variants: str = typer.Option("table4", help="table4 (paper Table 4 ablations) | recipes (UniSS, MSLM-S2ST, S2ST-Omni: issue 20)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="stream every step's full output instead of the live step view"),
) -> None:
    """Run the ablation pipeline locally (variants of paper Table 4, or the three recipes side by
    side), then compare with ``uniss compare``. ``recipes`` evaluates Quality only: the two
    baselines decode one program whatever the mode, and issue 20 compares them with UniSS Quality."""
    from pipelines.ablation import VARIANT_SETS

    if variants not in VARIANT_SETS:
        raise typer.BadParameter(f"--variants must be one of {', '.join(VARIANT_SETS)}, got {variants!r}")
    chosen = [{**v, "overrides": [*v["overrides"], *override]} for v in VARIANT_SETS[variants]]
    args = {"data_version": data_version, "variants": chosen, "eval_limit": eval_limit}
    metric = ""
    if variants == "recipes":
        args["eval_modes"] = ["quality"]
        metric = " --mode quality --metric speech_bleu,text_bleu,slc_0.2,speaker_sim,mos,rtf"
    res = run_local("ablation", args, verbose=verbose, console=console)
    _print_summary(res)
    ids = [s["run_id"] for s in res.steps if s["step"] == "evaluate_model"]
    if ids:
        console.print(f"compare: uniss compare {' '.join(shlex.quote(i) for i in ids)}{metric}")


def register(root: typer.Typer) -> None:
    """Add ``retrain`` and the ``pipeline`` group to the root app."""
    root.command("retrain")(retrain)
    root.add_typer(app, name="pipeline")
