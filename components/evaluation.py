"""Evaluation, gate, registry and deployment components (paper §5.2; MLflow registry; KServe)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from uniss.version import PROJECT_IMAGE as BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def evaluate_model(
    bundle: Input[Model],
    data: Input[Dataset],
    split: str,
    directions: list,
    modes: list,
    limit: int,
    metrics: Output[Metrics],
    report: Output[HTML],
    variant: str = "",
) -> dict:
    """Speech-BLEU, Text-BLEU, SLC-0.2/0.4, speaker similarity per direction and mode; returns the
    flat metrics dict (keys like ``speech_bleu.en-zh.quality``). ``variant`` (the ablation / recipe
    variant's name) tags the step's MLflow run ``uniss.variant``, the row label of ``uniss compare``."""
    from components.tracking import record_metrics, step_run
    from evaluation.evaluate import evaluate_step as run

    tags = {"uniss.variant": variant} if variant else None
    with step_run("evaluate_model", {"split": split, "directions": directions, "modes": modes, "limit": limit}, tags=tags):
        flat = run(bundle_dir=bundle.path, data_dir=data.path, split=split, directions=directions,
                   modes=modes, limit=limit, report_dir=report.path)
    record_metrics(metrics, flat)
    return flat


@dsl.component(base_image=BASE_IMAGE)
def gate_model(challenger_metrics: dict) -> bool:
    """Evaluation gate vs the current ``champion`` (absolute floors + non-regression, params.yaml)."""
    from components.tracking import step_run
    from registry.models import gate_against_champion as run

    with step_run("gate_model"):
        decision = run(challenger_metrics)
    return bool(decision.passed)


@dsl.component(base_image=BASE_IMAGE)
def register_model(bundle: Input[Model], metrics_json: dict, data_version: str) -> str:
    """Register the bundle as a new MLflow model version (alias ``challenger``) with lineage tags."""
    from components.tracking import set_parent_tags, step_run
    from registry.models import register_step as run

    with step_run("register_model", {"data_version": data_version}):
        version = run(bundle_dir=bundle.path, metrics=metrics_json, data_version=data_version)
    set_parent_tags({"model_version": version})
    return str(version)


@dsl.component(base_image=BASE_IMAGE)
def promote_model(version: str) -> str:
    """Move the ``champion`` alias to ``version`` through the gate; returns the champion version."""
    from components.tracking import set_parent_tags, step_run
    from registry.models import promote as run

    with step_run("promote_model", {"version": version}):
        decision = run(version)
    set_parent_tags({"promoted": decision.passed})
    return version if decision.passed else ""


@dsl.component(base_image=BASE_IMAGE)
def record_rejection(challenger_metrics: dict, version: str, data_version: str) -> str:
    """Log why the gate refused to promote the challenger (it stays registered with alias
    ``challenger``); returns the run summary as JSON (``promoted: false`` and the reasons)."""
    import json

    from components.tracking import set_parent_tags, step_run
    from registry.models import gate_against_champion as run
    from uniss.settings import MODEL_NAME

    with step_run("record_rejection"):
        decision = run(challenger_metrics)
    set_parent_tags({"promoted": False, "gate_reasons": "; ".join(decision.reasons)[:4000]})
    return json.dumps({"promoted": False, "model_version": version, "data_version": data_version,
                       "reasons": list(decision.reasons),
                       "serve_command": f"uniss serve --model models:/{MODEL_NAME}/{version} --port 8080"})


@dsl.component(base_image=BASE_IMAGE)
def deploy_model(version: str, data_version: str, canary_percent: int, manifest: Output[Artifact]) -> str:
    """Write the KServe InferenceService for ``models:/uniss-s2st/<version>`` (canary split) and
    apply it when running inside a cluster; returns the run summary as JSON (model version,
    data version, ``promoted: true``, the InferenceService name and a ready ``uniss serve`` command)."""
    import json

    from components.tracking import step_run
    from serving.manifests import deploy_step as run

    with step_run("deploy_model", {"version": version, "canary_percent": canary_percent}):
        info = run(version=version, canary_percent=canary_percent, manifest_path=manifest.path)
    return json.dumps({"promoted": True, "model_version": version, "data_version": data_version, **info})
