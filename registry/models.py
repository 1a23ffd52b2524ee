"""MLflow model registry for UniSS bundles: register, gate, promote, roll back, resolve.

- A bundle directory (``uniss.bundle``) is logged as an MLflow **pyfunc** model
  (:class:`registry.pyfunc.UnissPyfunc`)
  and registered as a new version of ``uniss-s2st``; the new version gets alias ``challenger``.
  ``mlflow.pyfunc.load_model("models:/uniss-s2st@champion")`` then translates audio.
- Every version is tagged with its lineage (``data_version``, ``shard_md5s``, ``git_commit``,
  ``pipeline_run_id``, ``codec_fingerprint``, ``phase``, ``size``) and its evaluation metrics
  (``eval_metrics`` JSON plus one ``metric.<key>`` tag per metric).
- :func:`promote` moves alias ``champion`` only through the gate (``uniss.gate.decide`` with the
  thresholds of ``params.yaml``), against the current champion's ``eval_metrics``; ``force=True``
  requires a reason, which is recorded. Every decision is logged as a run of experiment
  ``uniss-gate`` (tags, ``gate_passed`` metric, ``gate_decision.json`` artifact) and as tags on the
  challenger version.
- :func:`rollback` moves ``champion`` back to the previous champion, using the registered model tag
  ``champion_history`` (JSON list of versions, oldest first).
- :func:`resolve_model_uri` downloads ``models:/NAME@ALIAS`` (or ``models:/NAME/VERSION``) and returns
  the bundle directory inside it; :func:`resolve_model_source` does that for a URI and passes a
  local path through. The serving engine and the KServe predictor load local paths only: the entry
  points that accept a URI (``uniss serve`` / ``translate`` / ``evaluate``, ``evaluation``) resolve
  it here first.

Tracking server: ``uniss.settings.tracking_uri()`` (env ``MLFLOW_TRACKING_URI`` > ``UNISS_MLFLOW_TRACKING_URI`` > embedded).
Source: MLflow 3 docs, "Model Registry" (aliases, version tags) and "Custom Python Models" (pyfunc).

Size (~520 lines, just over the house guide of ~500): register, gate/promote, rollback and resolve
share the version-tag conventions above (lineage, metrics, champion history); splitting them would
spread one tag schema over several modules.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uniss.errors import UnissError
from uniss.gate import GateDecision, GateThresholds, decide, load_thresholds
from uniss.settings import MODEL_NAME

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Registered-model tag holding the JSON list of champion versions, oldest first.
HISTORY_TAG = "champion_history"
#: Experiment of the registration runs and of the gate/promotion/rollback decision runs.
REGISTRY_EXPERIMENT = "uniss-registry"
GATE_EXPERIMENT = "uniss-gate"
#: Name of the bundle inside the pyfunc model's artifacts.
BUNDLE_ARTIFACT = "bundle"
#: Lineage keys copied from ``bundle.json`` onto each version.
LINEAGE_KEYS = ("data_version", "shard_md5s", "git_commit", "codec_fingerprint", "phase", "size", "created_at", "recipe")
#: MLflow caps tag values (8000 chars on the server); longer lineage values are truncated with a marker.
_TAG_MAX = 5000

_DEFAULT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


class RegistryError(UnissError, ValueError):
    """Unknown model/version/alias, missing metrics, nothing to roll back, forced without a reason."""


# ---------------------------------------------------------------------------------------------
# tracking helpers
# ---------------------------------------------------------------------------------------------


def tracking_uri() -> str:
    """The MLflow tracking URI in use: :func:`uniss.settings.tracking_uri` (env
    ``MLFLOW_TRACKING_URI`` > ``UNISS_MLFLOW_TRACKING_URI`` > embedded stack)."""
    from uniss.settings import tracking_uri as _uri

    return _uri()


_REACHED: set[str] = set()


def check_server(uri: str | None = None, timeout_s: float = 5.0) -> str:
    """Fail fast with a typed error when the HTTP tracking server is down (MLflow's own client
    retries for minutes). Non-HTTP URIs (``file:``, ``sqlite:``) are not checked.

    Raises:
        RegistryError: ``GET <uri>/health`` fails or times out.
    """
    uri = uri or tracking_uri()
    if uri in _REACHED or not uri.startswith(("http://", "https://")):
        return uri
    import httpx

    try:
        httpx.get(uri.rstrip("/") + "/health", timeout=timeout_s).raise_for_status()
    except httpx.HTTPError as e:
        raise RegistryError(f"MLflow tracking server at {uri} is not reachable ({type(e).__name__}): "
                            "run `uniss stack up` or set MLFLOW_TRACKING_URI") from None
    _REACHED.add(uri)
    return uri


def _mlflow():
    import mlflow

    mlflow.set_tracking_uri(check_server())
    return mlflow


def client():
    """An ``MlflowClient`` on :func:`tracking_uri` (server reachability checked first).

    Raises:
        RegistryError: the tracking server is down.
    """
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=check_server())


def _tag(value: Any) -> str:
    s = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return s if len(s) <= _TAG_MAX else s[: _TAG_MAX - 14] + "...[truncated]"


# ---------------------------------------------------------------------------------------------
# register
# ---------------------------------------------------------------------------------------------


#: mlflow.pyfunc warnings that register() always triggers and that say nothing about the model:
#: the CloudPickle notice (UnissPyfunc is this package's own small class, unpickled only by this
#: package) and "cannot infer a signature" (predict takes a DataFrame on purpose; pyfunc.py docstring).
_HARMLESS_PYFUNC = ("Passing a Python object as `python_model`", "Failed to infer model signature")


class _HarmlessPyfuncFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_HARMLESS_PYFUNC)


@contextlib.contextmanager
def _quiet_pyfunc_log() -> Any:
    """Drop :data:`_HARMLESS_PYFUNC` records of the ``mlflow.pyfunc`` logger for the duration; every other
    warning still shows."""
    log = logging.getLogger("mlflow.pyfunc")
    f = _HarmlessPyfuncFilter()
    log.addFilter(f)
    try:
        yield
    finally:
        log.removeFilter(f)



def _metrics_tag(flat: Mapping[str, float]) -> str:
    """The ``eval_metrics`` tag: JSON of the whole-test-set metrics (keys without a ``/<slice>`` part,
    ``evaluation.common.slice_key``), the ones the gate compares. Per-slice metrics are in the
    ``metric.<key>`` tags and the evaluation run: with three slices the whole JSON outgrows MLflow's
    tag value limit (:data:`_TAG_MAX`), and a cut JSON could not be read back.

    Raises:
        RegistryError: even the whole-set metrics do not fit in one tag.
    """
    s = json.dumps({k: v for k, v in flat.items() if "/" not in k}, sort_keys=True)
    if len(s) > _TAG_MAX:
        raise RegistryError(f"eval_metrics JSON is {len(s)} characters, over the {_TAG_MAX}-character tag limit")
    return s


def _flat_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (metrics or {}).items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def register(
    bundle_dir: str | Path,
    *,
    metrics: Mapping[str, float] | None = None,
    data_version: str | None = None,
    pipeline_run_id: str | None = None,
    eval_run_id: str | None = None,
    name: str = MODEL_NAME,
    extra_tags: Mapping[str, str] | None = None,
) -> str:
    """Log ``bundle_dir`` as a pyfunc model, register it as a new version of ``name``, alias it
    ``challenger`` and tag it with lineage and metrics.

    Args:
        bundle_dir: a model bundle (``bundle.json`` is read for lineage).
        metrics: flat evaluation metrics (``speech_bleu.en-zh.quality`` -> value); the gate reads them.
        data_version: overrides ``bundle.json["data_version"]`` when given.
        pipeline_run_id: id of the pipeline run that produced the bundle (env ``MLFLOW_PARENT_RUN_ID``
            when not given).
        eval_run_id: MLflow run holding the evaluation report.
    Returns:
        the new version number as a string.
    Raises:
        BundleError: not a bundle; RegistryError: registration did not yield a version.
    """
    from uniss.bundle import read_bundle_meta

    bundle_dir = Path(bundle_dir)
    meta = read_bundle_meta(bundle_dir)
    mlflow = _mlflow()
    flat = _flat_metrics(metrics)
    lineage = {k: meta.get(k) for k in LINEAGE_KEYS if meta.get(k) is not None}
    if data_version:
        lineage["data_version"] = data_version
    pipeline_run_id = pipeline_run_id or os.environ.get("MLFLOW_PARENT_RUN_ID")
    if pipeline_run_id:
        lineage["pipeline_run_id"] = pipeline_run_id
    if eval_run_id:
        lineage["eval_run_id"] = eval_run_id

    from registry.pyfunc import UnissPyfunc  # imports mlflow.pyfunc: only when registering

    nested = mlflow.active_run() is not None  # e.g. inside a pipeline step's run
    mlflow.set_experiment(REGISTRY_EXPERIMENT)
    with mlflow.start_run(run_name=f"register-{bundle_dir.name}", nested=nested, tags={"uniss.step": "register"}) as run:
        mlflow.log_params({k: _tag(v)[:500] for k, v in lineage.items()})
        if flat:
            mlflow.log_metrics(flat)
        with _quiet_pyfunc_log():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=UnissPyfunc(),
                artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                registered_model_name=name,
                # explicit requirements: inferring them would load the model in a subprocess
                pip_requirements=["uniss-platform", "mlflow==3.17.2", "torch", "transformers==5.23.0"],
            )
        run_id = run.info.run_id
    version = getattr(info, "registered_model_version", None)
    if version is None:
        raise RegistryError(f"registering {bundle_dir} as {name} returned no version")
    version = str(version)
    c = client()
    tags = {k: _tag(v) for k, v in lineage.items()}
    tags.update({"registered_run_id": run_id, "eval_metrics": _metrics_tag(flat)})
    tags.update({f"metric.{k}": repr(v) for k, v in flat.items()})
    tags.update({k: _tag(v) for k, v in (extra_tags or {}).items()})
    for k, v in tags.items():
        c.set_model_version_tag(name, version, k, v)
    c.set_registered_model_alias(name, CHALLENGER, version)
    return version


def register_step(bundle_dir: str | Path, metrics: Mapping[str, float] | None, data_version: str | None) -> str:
    """Pipeline component entry (``components/evaluation.py`` ``register_model``): :func:`register`."""
    return register(bundle_dir, metrics=metrics, data_version=data_version or None)


# ---------------------------------------------------------------------------------------------
# versions, aliases, metrics
# ---------------------------------------------------------------------------------------------


def _version(name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version(name, str(version))
    except MlflowException as e:
        raise RegistryError(f"{name} has no version {version}: {e.message}") from None


def alias_version(alias: str, name: str = MODEL_NAME) -> str | None:
    """Version currently holding ``alias`` (``None`` when the alias or the model does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def version_metrics(version: str, name: str = MODEL_NAME) -> dict[str, float]:
    """Flat eval metrics of a version: its ``metric.<key>`` tags (every metric, slices included), or
    for versions registered before those tags its ``eval_metrics`` JSON tag.

    Raises:
        RegistryError: unknown version, or a version registered without metrics.
    """
    mv = _version(name, version)
    per_key = {k[len("metric."):]: v for k, v in (mv.tags or {}).items() if k.startswith("metric.")}
    if per_key:  # one tag per metric, slices included (never cut)
        try:
            return {k: float(v) for k, v in per_key.items()}
        except ValueError:
            raise RegistryError(f"{name} version {version}: a metric.* tag is not a number") from None
    raw = (mv.tags or {}).get("eval_metrics")
    if not raw:
        raise RegistryError(f"{name} version {version} has no eval_metrics tag: evaluate it and register with metrics")
    try:
        return {k: float(v) for k, v in json.loads(raw).items()}
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        raise RegistryError(f"{name} version {version}: eval_metrics tag is not a JSON object of numbers") from None


def champion_history(name: str = MODEL_NAME) -> list[str]:
    """Champion versions, oldest first (registered model tag ``champion_history``)."""
    from mlflow.exceptions import MlflowException

    try:
        rm = client().get_registered_model(name)
    except MlflowException:
        return []
    try:
        return [str(v) for v in json.loads((rm.tags or {}).get(HISTORY_TAG, "[]"))]
    except json.JSONDecodeError:
        return []


def _set_history(history: list[str], name: str) -> None:
    client().set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))


# ---------------------------------------------------------------------------------------------
# gate, promote, rollback
# ---------------------------------------------------------------------------------------------


def _thresholds(thresholds: GateThresholds | None, params_path: str | Path | None) -> GateThresholds:
    return thresholds or load_thresholds(params_path or _DEFAULT_PARAMS)


def _log_decision(action: str, decision: GateDecision | None, tags: Mapping[str, Any]) -> str:
    """One run in experiment ``uniss-gate`` per gate/promote/rollback; returns its run id."""
    mlflow = _mlflow()
    mlflow.set_experiment(GATE_EXPERIMENT)
    parent = os.environ.get("MLFLOW_PARENT_RUN_ID")
    active = mlflow.active_run()
    nested = active is not None or bool(parent)
    all_tags = {"uniss.action": action, **{k: _tag(v) for k, v in tags.items() if v is not None}}
    if decision is not None:
        all_tags.update({"gate.passed": str(decision.passed), "gate.reasons": _tag("; ".join(decision.reasons) or "-")})
    with mlflow.start_run(run_name=action, nested=nested, parent_run_id=parent if (parent and active is None) else None,
                          tags=all_tags) as run:
        if decision is not None:
            mlflow.log_metric("gate_passed", float(decision.passed))
            mlflow.log_metric("gate_failed_checks", float(len(decision.reasons)))
            mlflow.log_dict(decision.to_dict(), "gate_decision.json")
        return run.info.run_id


def gate_against_champion(
    challenger_metrics: Mapping[str, float],
    *,
    thresholds: GateThresholds | None = None,
    params_path: str | Path | None = None,
    name: str = MODEL_NAME,
    log: bool = True,
) -> GateDecision:
    """Gate metrics (not yet registered) against the current champion's; logs the decision.

    Without a champion only the absolute floors apply.
    """
    champ = alias_version(CHAMPION, name)
    champ_metrics = version_metrics(champ, name) if champ else None
    decision = decide(_flat_metrics(challenger_metrics), champ_metrics, _thresholds(thresholds, params_path))
    if log:
        _log_decision("gate", decision, {"champion_version": champ or "none"})
    return decision


def promote(
    version: str | int,
    force: bool = False,
    reason: str | None = None,
    *,
    thresholds: GateThresholds | None = None,
    params_path: str | Path | None = None,
    name: str = MODEL_NAME,
) -> GateDecision:
    """Move alias ``champion`` to ``version`` if it passes the gate against the current champion.

    Args:
        version: model version to promote.
        force: move the alias even when the gate refuses (requires ``reason``; both recorded).
        reason: why a forced promotion is acceptable.
        thresholds: gate thresholds (default: ``params.yaml`` ``gate:``).
    Returns:
        the :class:`GateDecision` (``passed`` False and the alias unchanged when refused and not forced).
    Raises:
        RegistryError: unknown version, version without metrics, ``force`` without a reason.
    """
    version = str(version)
    if force and not (reason and reason.strip()):
        raise RegistryError("--force needs --reason: a forced promotion must record why")
    _version(name, version)
    challenger = version_metrics(version, name)
    champ = alias_version(CHAMPION, name)
    if champ == version:
        decision = GateDecision(passed=True, reasons=[], checks=[])
        _log_decision("promote", decision, {"version": version, "champion_version": champ, "note": "already champion"})
        return decision
    champ_metrics = version_metrics(champ, name) if champ else None
    decision = decide(challenger, champ_metrics, _thresholds(thresholds, params_path))
    moved = decision.passed or force
    c = client()
    c.set_model_version_tag(name, version, "gate.passed", str(decision.passed))
    c.set_model_version_tag(name, version, "gate.reasons", _tag("; ".join(decision.reasons) or "-"))
    c.set_model_version_tag(name, version, "gate.champion_version", champ or "none")
    if moved:
        history = champion_history(name)
        if champ and (not history or history[-1] != champ):
            history.append(champ)  # a champion set by hand outside this module
        history.append(version)
        c.set_registered_model_alias(name, CHAMPION, version)
        _set_history(history, name)
        if alias_version(CHALLENGER, name) == version:
            c.delete_registered_model_alias(name, CHALLENGER)
        if force and not decision.passed:
            c.set_model_version_tag(name, version, "promotion.forced", "true")
            c.set_model_version_tag(name, version, "promotion.reason", _tag(reason))
    _log_decision("promote", decision, {
        "version": version, "champion_version": champ or "none", "promoted": str(moved),
        "forced": str(bool(force and not decision.passed)), "reason": reason,
    })
    return decision


def rollback(name: str = MODEL_NAME, reason: str | None = None) -> str:
    """Move ``champion`` back to the previous champion; returns that version.

    Raises:
        RegistryError: fewer than two champions in ``champion_history``.
    """
    history = champion_history(name)
    current = alias_version(CHAMPION, name)
    if current and history and history[-1] != current:
        history.append(current)
    if len(history) < 2:
        raise RegistryError(f"{name}: no previous champion to roll back to (history {history})")
    demoted = history.pop()
    previous = history[-1]
    c = client()
    c.set_registered_model_alias(name, CHAMPION, previous)
    _set_history(history, name)
    c.set_model_version_tag(name, demoted, "rolled_back", "true")
    _log_decision("rollback", None, {"from_version": demoted, "to_version": previous, "reason": reason})
    return previous


# ---------------------------------------------------------------------------------------------
# resolve
# ---------------------------------------------------------------------------------------------


class AliasNotSetError(RegistryError):
    """A ``models:/NAME@ALIAS`` URI whose alias (or registered model) does not exist yet."""


def model_uri_version(uri: str) -> tuple[str, str]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` -> ``(name, version)``, the alias pinned
    to the version that holds it now (MLflow model-registry URI forms).

    Raises:
        AliasNotSetError: the alias (or the registered model) does not exist yet.
        RegistryError: not a ``models:/`` URI, no alias or version, or an unknown version.
    """
    if not uri.startswith("models:/"):
        raise RegistryError(f"not a registry URI: {uri!r} (expected models:/NAME@ALIAS or models:/NAME/VERSION)")
    body = uri[len("models:/"):]
    if "@" in body:
        name, alias = body.split("@", 1)
        version = alias_version(alias, name)
        if version is None:
            raise AliasNotSetError(f"{name} has no alias {alias!r}")
        return name, str(version)
    if "/" in body:
        name, version = body.split("/", 1)
        _version(name, version)
        return name, version
    raise RegistryError(f"{uri!r} names no alias or version")


def resolve_model_uri(uri: str, dst: str | Path | None = None) -> Path:
    """Download ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` and return the bundle directory.

    Downloads are cached per version under ``<UNISS_HOME>/models/<name>/<version>`` (or ``dst``).

    Raises:
        RegistryError: not a ``models:/`` URI, unknown alias/version, or no bundle in the model.
    """
    from mlflow.exceptions import MlflowException

    name, version = model_uri_version(uri)
    if dst is None:
        from uniss.settings import get_settings

        dst = get_settings().home_dir / "models" / name / str(version)
    dst = Path(dst)
    if (dst / "MLmodel").is_file():
        return _bundle_in(dst, uri)
    dst.mkdir(parents=True, exist_ok=True)
    mlflow = _mlflow()
    try:
        with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp))
            for p in local.iterdir():
                target = dst / p.name
                if not target.exists():
                    p.rename(target)
    except MlflowException as e:
        raise RegistryError(f"cannot download {uri}: {e.message}") from None
    return _bundle_in(dst, uri)


def _bundle_in(model_dir: Path, uri: str) -> Path:
    """The bundle directory inside a downloaded pyfunc model (``MLmodel`` artifacts entry)."""
    import yaml

    try:
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
        rel = mlmodel["flavors"]["python_function"]["artifacts"][BUNDLE_ARTIFACT]["path"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        raise RegistryError(f"{uri} is not a UniSS pyfunc model (no '{BUNDLE_ARTIFACT}' artifact in MLmodel)") from None
    bundle = model_dir / rel
    if not (bundle / "bundle.json").is_file():
        raise RegistryError(f"{uri}: {rel} holds no bundle.json")
    return bundle


def resolve_model_source(model: str | Path) -> Path:
    """A model source as ``serving.engine.TranslationEngine.load`` takes it: a ``models:/`` URI is
    downloaded (:func:`resolve_model_uri`) to its bundle directory; any other value (bundle dir,
    released-UniSS checkpoint dir) is returned as a ``Path`` unchanged, unchecked.

    Raises:
        RegistryError: a ``models:/`` URI that cannot be resolved (see :func:`resolve_model_uri`).
    """
    src = str(model)
    if src.startswith("models:/"):
        return resolve_model_uri(src)
    return Path(src)
