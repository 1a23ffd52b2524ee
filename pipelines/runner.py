"""Run, compile and submit the KFP pipelines: the glue behind ``uniss retrain`` and ``uniss pipeline``.

Local runs use ``kfp.local`` with ``SubprocessRunner(use_venv=False)`` (container components cannot
run locally; ``use_venv=True`` reinstalls the package per task, ~20x slower) and local caching on,
with ``pipeline_root`` under the workspace. A parent MLflow run is opened for every pipeline run;
its id reaches the step processes through ``MLFLOW_PARENT_RUN_ID`` so each step logs a nested run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from uniss.errors import UnissError
from uniss.settings import REPO_ROOT, Settings, get_settings

#: Library trees whose content decides whether a cached local step is still valid. A component's
#: own source is already part of kfp.local's cache key; each step also depends on the trees below
#: (see ``pipelines.retrain.STEP_CODE``).
CODE_DIRS = ("uniss", "training", "serving", "evaluation", "registry")
PARAMS_FILE = REPO_ROOT / "params.yaml"
EXPERIMENT = "uniss-retrain"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # kfp.local colours task names in its error messages


class PipelineError(UnissError):
    """A pipeline run failed or was misconfigured."""


def code_version(root: Path = REPO_ROOT, dirs: tuple[str, ...] = CODE_DIRS) -> str:
    """sha256 (first 16 hex) over the sources and configs of ``dirs``: the local cache key part that
    makes a library change re-run the steps that depend on it."""
    h = hashlib.sha256()
    for d in dirs:
        for f in sorted((root / d).rglob("*")):
            if f.suffix in (".py", ".yaml", ".json") and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """``params.yaml`` (DVC params; sections ``data``, ``gate``, ``pipeline``) as written, or ``{}``
    when absent, after validating it with :func:`uniss.params.load_project_params`.

    Raises:
        PipelineError: the file is not a YAML mapping, or a section has invalid values/unknown keys.
    """
    from uniss.params import ParamsError, load_project_params, read_params_yaml

    try:
        load_project_params(path)
        return read_params_yaml(path)
    except ParamsError as e:
        raise PipelineError(str(e)) from None


def parse_overrides(items: list[str]) -> list[str]:
    """Check ``key=value`` override strings.

    Raises:
        PipelineError: an item without ``=``.
    """
    bad = [i for i in items if "=" not in i]
    if bad:
        raise PipelineError(f"overrides must be key=value, got {bad}")
    return list(items)


def retrain_arguments(
    size: str,
    *,
    data_version: str = "",
    overrides: list[str] | None = None,
    eval_limit: int = 0,
    seed: int = 0,
    nproc: int = 2,
    params: dict[str, Any] | None = None,
    sources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pipeline arguments of ``uniss-retrain`` for a size preset (``tiny`` | ``demo``): the data
    section of params.yaml, and the preset's training overrides / evaluation limit from its
    ``pipeline.<size>`` section, then the caller's overrides.

    Args:
        sources: the user's corpora (``uniss.unist.ingest.IngestSpec`` as a dict, e.g. from
            ``pipelines.cli._common.sources_spec``); also restricts ``eval_directions`` to its
            ``directions``. None / ``{}``: the demo corpus of ``size``.

    Raises:
        PipelineError: unknown size, or an invalid sources spec.
    """
    if size not in ("tiny", "demo"):
        raise PipelineError(f"unknown size {size!r}; expected tiny or demo")
    params = load_params() if params is None else params
    preset = dict(params.get("pipeline", {}).get(size, {}))
    from uniss.params import PipelineParams

    try:
        codec_preset = PipelineParams.model_validate(params.get("pipeline") or {}).codec_for(size)
    except ValueError as e:  # pydantic's ValidationError and ParamsError are ValueErrors
        raise PipelineError(str(e)) from None
    extra: dict[str, Any] = {}
    if sources:
        from uniss.unist.errors import UnistError
        from uniss.unist.ingest import ingest_spec

        try:
            spec = ingest_spec(sources)
        except UnistError as e:
            raise PipelineError(str(e)) from None
        extra = {"sources": dict(sources)}
        if spec is not None and not spec.is_demo:
            extra["eval_directions"] = list(spec.directions)
    return {**extra,
        "size": size,
        "seed": seed,
        "data_version": data_version,
        "data_params": dict(params.get("data", {})),
        "model_size": "tiny",
        "train_overrides": [*parse_overrides(list(preset.get("train_overrides", []))), *parse_overrides(overrides or [])],
        "nproc": nproc,
        "eval_limit": eval_limit or int(preset.get("eval_limit", 0)),
        "codec_preset": codec_preset,
    }


@dataclass
class LocalRunResult:
    """Outcome of one local pipeline run."""

    parent_run_id: str | None
    tracking_uri: str | None
    wall_s: float
    summary: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    experiment_id: str | None = None
    log_dir: Path | None = None

    @property
    def run_url(self) -> str | None:
        """MLflow UI address of the parent run."""
        if not (self.parent_run_id and self.tracking_uri):
            return None
        return f"{self.tracking_uri}/#/experiments/{self.experiment_id}/runs/{self.parent_run_id}"


def _tracking_env(settings: Settings) -> dict[str, str]:
    return {**settings.s3_env(), "MLFLOW_EXPERIMENT_NAME": EXPERIMENT}


def run_local(
    pipeline: str,
    arguments: dict[str, Any],
    *,
    settings: Settings | None = None,
    enable_caching: bool = True,
    with_stack: bool = True,
    verbose: bool = False,
    console: Console | None = None,
    recipe: str = "uniss",
) -> LocalRunResult:
    """Run ``retrain`` or ``ablation`` with kfp.local in this machine's venv (``recipe``: the
    ``retrain`` build, ``pipelines.retrain.make_retrain_pipeline``; ``ablation`` is UniSS's only).

    Brings the embedded stack up if needed (``with_stack``), opens the parent MLflow run, runs the
    pipeline and collects the nested step runs. By default the terminal shows a live step view
    (:func:`pipelines.live.quiet_run`) and each step's output (kfp's executor log, the step's
    libraries) goes to ``<home>/runs/<run>/logs/<step>.log``; ``verbose`` streams everything to
    the terminal as kfp.local does.

    Raises:
        PipelineError: the pipeline failed (its message names the failed step's log), or an unknown
            pipeline or recipe.
    """
    from kfp import local

    if recipe != "uniss" and pipeline != "retrain":
        raise PipelineError(f"recipe {recipe!r} applies to the retrain pipeline only, not {pipeline!r}")

    # kfp.local warns for every task that our project image is not a "python" image; the
    # SubprocessRunner runs the component in this venv, so the image is not used locally.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task that uses custom or non-Python",
                            category=RuntimeWarning, module="kfp.local.subprocess_task_handler")
    # ... and that a display name has no local effect (we set it for the cluster UI: train-phase-N).
    warnings.filterwarnings("ignore", message=r"Task '[^']*': settings \['display_name'\] have no effect",
                            category=UserWarning)
    settings = settings or get_settings()
    env: dict[str, str] = {}
    if with_stack:
        from infra.local.stack import ensure_stack

        ensure_stack(settings)
        env = _tracking_env(settings)
    os.environ.update(env)
    root = settings.home_dir / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), enable_caching=enable_caching)

    if pipeline == "retrain":
        from pipelines.retrain import make_retrain_pipeline

        try:
            fn = make_retrain_pipeline("local", {d: code_version(dirs=(d,)) for d in CODE_DIRS}, recipe=recipe)
        except ValueError as e:  # ConfigError is one too
            raise PipelineError(str(e)) from None
    elif pipeline == "ablation":
        from pipelines.ablation import ablation as fn
    else:
        raise PipelineError(f"unknown pipeline {pipeline!r}")

    parent_id = None
    run_name = f"{pipeline}-{time.strftime('%Y%m%d-%H%M%S')}"
    log_dir = None if verbose else settings.home_dir / "runs" / run_name / "logs"
    t0 = time.perf_counter()
    if with_stack:
        import mlflow

        mlflow.set_tracking_uri(settings.tracking_uri)
        if not verbose:  # its INFO "Experiment ... does not exist. Creating a new experiment." breaks the live view
            logging.getLogger("mlflow.tracking.fluent").setLevel(logging.WARNING)
        mlflow.set_experiment(EXPERIMENT)
        parent = mlflow.start_run(run_name=run_name)
        parent_id = parent.info.run_id
        mlflow.log_params({k: json.dumps(v)[:500] for k, v in arguments.items()})
        mlflow.set_tag("uniss.code_version", code_version())
        os.environ["MLFLOW_PARENT_RUN_ID"] = parent_id
    status = "FAILED"
    view = None
    try:
        if log_dir is None:
            task = fn(**arguments)
        else:
            from pipelines.live import quiet_run, step_names

            with quiet_run(step_names(fn.pipeline_spec), log_dir, console) as view:
                task = fn(**arguments)
        status = "FINISHED"
    except Exception as e:  # kfp.local raises RuntimeError naming the failed task
        failed = [str(s.log_path) for s in view.failed] if view is not None else []
        logs = f"; log: {', '.join(failed)}" if failed else (f"; logs: {log_dir}" if log_dir else "")
        raise PipelineError(f"pipeline {pipeline} failed: {_ANSI.sub('', str(e))}{logs}") from None
    finally:
        wall = time.perf_counter() - t0
        os.environ.pop("MLFLOW_PARENT_RUN_ID", None)
        if with_stack:
            import mlflow

            mlflow.log_metric("pipeline_wall_s", wall)
            mlflow.end_run(status=status)

    summary: dict[str, Any] = {}
    out = getattr(task, "output", None) if pipeline == "retrain" else None
    if isinstance(out, str) and out:
        summary = json.loads(out)
    steps = _nested_steps(parent_id) if parent_id else []
    if parent_id and summary:
        from mlflow.tracking import MlflowClient

        for k in ("data_version", "model_version", "promoted"):
            if k in summary:
                MlflowClient().set_tag(parent_id, k, str(summary[k]))
    exp_id = None
    if parent_id:
        from mlflow.tracking import MlflowClient

        exp_id = MlflowClient().get_run(parent_id).info.experiment_id
    return LocalRunResult(parent_id, settings.tracking_uri if with_stack else None, wall, summary, steps, exp_id, log_dir)


def _nested_steps(parent_id: str) -> list[dict[str, Any]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", order_by=["attributes.start_time ASC"]
    )
    def wall(r: Any) -> float | None:
        w = r.data.metrics.get("step_wall_s")
        if w is None and r.info.end_time and r.info.start_time:
            w = (r.info.end_time - r.info.start_time) / 1000.0  # ms -> s
        return w

    return [{"step": r.data.tags.get("uniss.step", r.info.run_name), "run_id": r.info.run_id, "wall_s": wall(r)} for r in runs]


def compile_pipeline(pipeline: str, output: Path, *, model_size: str = "tiny", nodes: int | None = None,
                     gpus_per_node: int | None = None, recipe: str = "uniss") -> Path:
    """Compile ``retrain`` (cluster target) or ``ablation`` to KFP IR YAML.

    Args:
        pipeline: ``retrain`` | ``ablation``.
        output: YAML path to write.
        model_size, nodes, gpus_per_node: ``retrain`` only: defaults of those pipeline
            parameters; each training phase runs as a TrainJob of ``nodes`` x ``gpus_per_node``
            GPUs (``None`` = the ``cluster`` section of ``<model_size>_phase1.yaml``).
        recipe: ``retrain`` only: ``uniss`` (3 phases) or ``mslm`` (the MSLM-S2ST baseline's one
            training step; ``pipelines.retrain.make_retrain_pipeline``).

    Raises:
        PipelineError: unknown pipeline or recipe, or a bad size / node count.
    """
    from kfp import compiler

    if pipeline == "retrain":
        from pipelines.retrain import make_retrain_pipeline
        from training.config import ConfigError

        try:
            fn = make_retrain_pipeline("cluster", model_size=model_size, nodes=nodes, gpus_per_node=gpus_per_node,
                                       recipe=recipe)
        except (ConfigError, ValueError) as e:
            raise PipelineError(str(e)) from None
    elif pipeline == "ablation" and recipe == "uniss":
        from pipelines.ablation import ablation as fn
    else:
        raise PipelineError(f"unknown pipeline {pipeline!r} (recipe {recipe!r})")
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(fn, str(output))
    return output


def submit(pipeline: str, host: str, arguments: dict[str, Any], *, experiment: str = EXPERIMENT,
           namespace: str | None = None, enable_caching: bool = True, recipe: str = "uniss") -> str:
    """Compile (``recipe`` as in :func:`compile_pipeline`) and submit to a Kubeflow Pipelines
    endpoint; returns the KFP run id.

    Raises:
        PipelineError: the KFP API refused the run or cannot be reached; unknown pipeline or recipe.
    """
    import tempfile

    import kfp

    with tempfile.TemporaryDirectory() as tmp:
        pkg = compile_pipeline(pipeline, Path(tmp) / f"{pipeline}.yaml", recipe=recipe)
        try:
            client = kfp.Client(host=host, namespace=namespace)
            run = client.create_run_from_pipeline_package(
                str(pkg), arguments=arguments, experiment_name=experiment, enable_caching=enable_caching
            )
        except Exception as e:  # kfp client raises urllib3/ApiException subclasses
            raise PipelineError(f"could not submit to {host}: {e}") from None
    return run.run_id
