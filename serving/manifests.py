"""KServe ``InferenceService`` manifests for the UniSS predictor, built with the kserve SDK.

The predictor is a custom container (the project image) running ``uniss serve`` on port 8080,
bound to ``0.0.0.0`` inside the pod. The model bundle comes from MinIO: ``STORAGE_URI``
(``s3://...``) makes KServe's storage initializer download it to ``/mnt/models`` with the S3
credentials attached to the service account (KServe docs "Deploy InferenceService with a saved
model on S3": ``serving.kserve.io/s3-endpoint`` annotated secret on a ``ServiceAccount``). GPU
scheduling: a node selector for the GPU pool, a toleration for its taint and an
``nvidia.com/gpu`` limit. A challenger rollout sets ``canaryTrafficPercent`` on the predictor
(KServe "Canary rollout": the new revision gets that share of traffic, the last ready revision the
rest).

Locally (no cluster), :func:`deploy_step` also makes the embedded stack's model server
(``uniss stack up``, :mod:`serving.server`) serve the new champion: :func:`reload_local_server`
calls its ``POST /v2/repository/models/<name>/load`` (KServe's model-repository extension), which
resolves ``models:/<name>@champion`` again, loads it in the background while the old version keeps
answering, and swaps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from uniss.errors import UnissError
from uniss.settings import MODEL_NAME
from uniss.version import PROJECT_IMAGE

__all__ = ["DEFAULT_IMAGE", "DeployError", "ManifestError", "ServiceSpec", "build_inference_service", "deploy_step", "model_storage_uri",
           "reload_local_server", "to_yaml", "write_manifest"]

#: Seconds the deploy step waits for the local model server to load the new champion.
LOCAL_LOAD_TIMEOUT_S = 900.0

#: The project image (``uniss.version``: tag = package version), the same one every component runs in.
DEFAULT_IMAGE = PROJECT_IMAGE


class ManifestError(UnissError, ValueError):
    """Bad manifest parameters (canary percent out of range, non-S3 storage URI ...)."""


class DeployError(UnissError, RuntimeError):
    """The local model server answered but could not load the new champion (it keeps serving the
    previous version); the message quotes its reason."""


class ServiceSpec(BaseModel):
    """What the ``InferenceService`` needs.

    Attributes:
        name: service name (DNS-1035 label).
        namespace: Kubernetes namespace.
        storage_uri: bundle location in MinIO, ``s3://bucket/path``.
        image: predictor image.
        service_account: holds the MinIO S3 secret for the storage initializer.
        gpus: ``nvidia.com/gpu`` limit per replica (0 = CPU-only).
        node_selector: GPU node pool selector.
        tolerations: taints of the GPU pool to tolerate.
        canary_traffic_percent: share of traffic (0-100) for a challenger revision; ``None`` = all.
        min_replicas / max_replicas: autoscaling bounds.
        cpu / memory: requests and limits (Kubernetes quantities).
        env: extra environment (e.g. ``UNISS_SERVE_MAX_AUDIO_S``).
        runtime: decoding runtime of the predictor (``uniss serve --runtime``): ``continuous``
            (default; CPU or GPU, continuous batching in torch) or ``vllm`` (GPU only: needs
            ``gpus >= 1`` and an image with ``vllm`` installed; UNTESTED ON A GPU, see
            ``serving/vllm_runtime.py``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(MODEL_NAME, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace: str = "uniss"
    storage_uri: str = f"s3://mlflow/models/{MODEL_NAME}/champion"
    image: str = DEFAULT_IMAGE
    service_account: str = "uniss-s3"
    gpus: int = Field(1, ge=0)
    node_selector: dict[str, str] = Field(default_factory=lambda: {"cloud.google.com/gke-accelerator": "nvidia-l4", "uniss.io/pool": "gpu-serving"})
    tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    canary_traffic_percent: int | None = Field(None, ge=0, le=100)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(4, ge=1)
    cpu: str = "4"
    memory: str = "16Gi"
    env: dict[str, str] = Field(default_factory=dict)
    runtime: Literal["continuous", "vllm"] = "continuous"


def build_inference_service(spec: ServiceSpec) -> Any:
    """``kserve.V1beta1InferenceService`` for the spec.

    Raises:
        ManifestError: ``storage_uri`` is not ``s3://``; replica bounds inverted; ``runtime="vllm"``
            without a GPU.
    """
    from kserve import V1beta1InferenceService, V1beta1InferenceServiceSpec, V1beta1PredictorSpec, constants
    from kubernetes.client import V1Container, V1ContainerPort, V1EnvVar, V1ObjectMeta, V1ResourceRequirements, V1Toleration

    if not spec.storage_uri.startswith("s3://"):
        raise ManifestError(f"storage_uri must be an s3:// URI in MinIO, got {spec.storage_uri!r}")
    if spec.min_replicas > spec.max_replicas:
        raise ManifestError(f"min_replicas {spec.min_replicas} > max_replicas {spec.max_replicas}")
    if spec.runtime == "vllm" and spec.gpus < 1:
        raise ManifestError("runtime 'vllm' decodes on GPUs: set gpus >= 1 (or use runtime 'continuous' on CPU)")
    limits = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus:
        limits["nvidia.com/gpu"] = str(spec.gpus)
    env = {"STORAGE_URI": spec.storage_uri, "UNISS_SERVE_DEVICE": "cuda" if spec.gpus else "cpu", **spec.env}
    container = V1Container(
        name="kserve-container",
        image=spec.image,
        command=["uniss", "serve"],
        args=["--model", "/mnt/models", "--host", "0.0.0.0", "--port", "8080"]
        + (["--runtime", spec.runtime] if spec.runtime != "continuous" else []),
        ports=[V1ContainerPort(container_port=8080, protocol="TCP")],
        env=[V1EnvVar(name=k, value=v) for k, v in env.items()],
        resources=V1ResourceRequirements(requests={"cpu": spec.cpu, "memory": spec.memory}, limits=limits),
    )
    predictor = V1beta1PredictorSpec(
        containers=[container],
        service_account_name=spec.service_account,
        node_selector=dict(spec.node_selector) if spec.gpus else None,
        tolerations=[V1Toleration(**t) for t in spec.tolerations] if spec.gpus else None,
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        canary_traffic_percent=spec.canary_traffic_percent,
    )
    return V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1,
        kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=V1ObjectMeta(
            name=spec.name,
            namespace=spec.namespace,
            labels={"app.kubernetes.io/part-of": "uniss-platform", "uniss.io/model": MODEL_NAME},
            annotations={"serving.kserve.io/deploymentMode": "Serverless"},
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def to_yaml(isvc: Any) -> str:
    """Serialise an SDK object to YAML (camelCase keys, ``None`` fields dropped)."""
    from kubernetes.client import ApiClient

    return yaml.safe_dump(ApiClient().sanitize_for_serialization(isvc), sort_keys=False)


def write_manifest(spec: ServiceSpec, path: str | Path | None = None) -> str:
    """Build, serialise and (when ``path`` is given) write the manifest; returns the YAML text."""
    text = to_yaml(build_inference_service(spec))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    return text


def model_storage_uri(version: str, *, name: str = MODEL_NAME) -> str:
    """``s3://`` location of a registered model version's bundle in the object store.

    The MLflow server proxies artifacts to ``s3://<artifacts_bucket>/`` (``--artifacts-destination``),
    so a version whose source is ``mlflow-artifacts:/<path>`` lives at ``s3://<bucket>/<path>``;
    an ``s3://`` source is returned as is.

    Raises:
        ManifestError: the version's source is neither (e.g. a local ``file:`` store).
    """
    from mlflow.tracking import MlflowClient

    from uniss.settings import get_settings

    mv = MlflowClient().get_model_version(name, str(version))
    src = mv.source
    if src.startswith("models:/"):  # MLflow 3 logged models: the artifact location of the LoggedModel
        # the REST store may leave ModelVersion.model_id empty; the source is then models:/<model_id>
        model_id = getattr(mv, "model_id", None) or src[len("models:/"):].split("/")[0]
        src = MlflowClient().get_logged_model(model_id).artifact_location
    if src.startswith("s3://"):
        return src
    if src.startswith("mlflow-artifacts:/"):
        return f"s3://{get_settings().artifacts_bucket}/{src[len('mlflow-artifacts:/'):].lstrip('/')}"
    raise ManifestError(f"model {name} v{version} is stored at {src!r}, not in the S3 object store")


def deploy_step(*, version: str, canary_percent: int, manifest_path: str, name: str = MODEL_NAME,
                namespace: str = "uniss") -> dict[str, Any]:
    """Pipeline ``deploy`` step: write the InferenceService of registered version ``version``
    (storage in MinIO, ``canaryTrafficPercent`` = ``canary_percent`` for the new revision) to
    ``manifest_path``, and apply it with the KServe client when running inside a cluster
    (``KUBERNETES_SERVICE_HOST`` set). Otherwise the embedded stack's model server is made to
    serve the new champion (:func:`reload_local_server`).

    Returns:
        ``{"inference_service", "manifest", "storage_uri", "applied", "serve_command", "local_server"}``;
        ``local_server`` is :func:`reload_local_server`'s answer (``None`` in a cluster).

    Raises:
        ManifestError: empty version or the model is not stored in S3.
        DeployError: the local model server is running but failed to load the champion.
    """
    import os

    if not version:
        raise ManifestError("no model version to deploy (the gate refused promotion)")
    spec = ServiceSpec(name=name, namespace=namespace, storage_uri=model_storage_uri(version, name=name),
                       canary_traffic_percent=canary_percent or None)
    write_manifest(spec, manifest_path)
    applied = False
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        from kserve import KServeClient

        client = KServeClient()
        isvc = build_inference_service(spec)
        try:
            client.get(name, namespace=namespace)
            client.patch(name, isvc, namespace=namespace)
        except RuntimeError:
            client.create(isvc, namespace=namespace)
        applied = True
    local = None if applied else reload_local_server(name=name, expected_version=str(version))
    return {
        "inference_service": f"{namespace}/{name}",
        "manifest": str(manifest_path),
        "storage_uri": spec.storage_uri,
        "applied": applied,
        "serve_command": f"uniss serve --model models:/{name}@champion --port 8080",
        "local_server": local,
    }


def reload_local_server(*, name: str = MODEL_NAME, expected_version: str | None = None, url: str | None = None,
                        timeout_s: float = LOCAL_LOAD_TIMEOUT_S) -> dict[str, Any]:
    """Make the embedded stack's model server load its source again (``models:/<name>@champion``)
    with no downtime: ``POST {url}/v2/repository/models/{name}/load`` (returns once the new model
    is installed), then read back the version it serves (``POST /v2/repository/index``).

    Args:
        name: model route name.
        expected_version: the version just promoted (reported as ``matches`` when given).
        url: model server URL; default ``uniss.settings.Settings.model_server_url``.
        timeout_s: longest wait for the load, seconds.

    Returns:
        ``{"url", "reloaded", "served_version", "matches", "detail"}``; ``reloaded`` is False with
        the reason in ``detail`` when the stack runs no model server (``UNISS_MODEL_SERVER=false``)
        or none answers at ``url`` (then ``uniss stack up`` starts it, and it loads the champion at
        start).

    Raises:
        DeployError: the server answered the load with an error (it keeps the previous version).
    """
    import httpx

    from uniss.settings import get_settings

    s = get_settings()
    if url is None and not s.model_server:
        return {"url": None, "reloaded": False, "served_version": None, "matches": None,
                "detail": "the embedded stack runs no model server (UNISS_MODEL_SERVER=false)"}
    base = (url or s.model_server_url).rstrip("/")
    out: dict[str, Any] = {"url": base, "reloaded": False, "served_version": None, "matches": None, "detail": ""}
    try:
        r = httpx.post(f"{base}/v2/repository/models/{name}/load", timeout=timeout_s)
    except httpx.ConnectError:
        out["detail"] = f"no model server answers at {base}: `uniss stack up` starts it (it loads the champion at start)"
        return out
    except httpx.HTTPError as e:
        raise DeployError(f"model server at {base} did not finish loading {name}: {type(e).__name__}: {e}") from None
    if r.status_code != 200:
        raise DeployError(f"model server at {base} could not load the new {name} champion (HTTP {r.status_code}: "
                          f"{r.text[:500]}); it keeps serving the previous version")
    out["reloaded"] = True
    try:
        row = next(x for x in httpx.post(f"{base}/v2/repository/index", timeout=30).json() if x.get("name") == name)
        out["served_version"] = str(row.get("version") or "") or None
    except (httpx.HTTPError, ValueError, StopIteration, AttributeError) as e:
        out["detail"] = f"loaded; version not readable from the index ({type(e).__name__})"
        return out
    if expected_version is not None:
        out["matches"] = out["served_version"] == str(expected_version)
    out["detail"] = f"serving {name} version {out['served_version']}" + (
        "" if out["matches"] in (None, True) else f" (the champion moved since version {expected_version} was promoted)")
    return out
