"""The cluster training engine: one phase as a Kubeflow Trainer v2 ``TrainJob`` across GPU nodes.

:class:`TrainJobLauncher` is the second :class:`training.launch.Launcher` (the first is the local
``TorchrunLauncher``). The pipeline's training step prepares the phase work directory on the
shared checkpoint volume (``UNISS_CHECKPOINT_ROOT``, a ReadWriteMany PVC every node mounts), then
this launcher creates a ``TrainJob`` (``trainer.kubeflow.org/v1alpha1``) that runs::

    torchrun -m training.recipe worker --work WORK [--resume-from step<N>]

on ``nodes`` pods with ``gpus_per_node`` ranks each against a torch ``ClusterTrainingRuntime``
(``infra/k8s/trainer/``; the Trainer controller sets torchrun's ``PET_NNODES``,
``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR`` for every node), follows its status
and the rank-0 log, and raises :class:`~training.workdir.TrainError` with the job's ``Failed``
condition reason. Rerunning the step on the same inputs finds the same work directory: a job still
running is followed again, a finished one is not rerun, a failed one is replaced by a new attempt
that resumes from the last ZeRO-3 checkpoint (``ds/latest``, training/checkpointer.py). The
ranks pick NCCL when they see GPUs, gloo otherwise (training/recipe.py ``setup``).

The object is built from the Trainer API models (PyPI ``kubeflow-trainer-api``, the pydantic
models generated from the Trainer CRDs), so field names and types are checked at build time; the
scheduling pieces the runtime does not know (GPU-pool node selector, tolerations, checkpoint
volume, ``/dev/shm``) go into a ``runtimePatches`` pod patch of the runtime's ``node`` job, which
is how Trainer >= 2.3 lets a TrainJob patch its runtime. Kubernetes is reached through two
injectable clients (``CustomObjectsApi``- and ``CoreV1Api``-shaped), so tests fake them.

Practice: STYLE.md #17 (a TrainJob against a named runtime, created and watched from the
pipeline step; no hand-made pods or rank wiring).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeflow_trainer_api import models as m

from training.checkpointer import latest_tag
from training.workdir import DONE_FILE, DS_DIR, TrainError
from uniss.version import PROJECT_IMAGE

__all__ = [
    "CHECKPOINT_MOUNT",
    "CHECKPOINT_PVC",
    "GPU_NODE_SELECTOR",
    "GPU_TOLERATION",
    "NODE_JOB",
    "PATCH_MANAGER",
    "RUNTIME_NAME",
    "S3_SECRET",
    "S3_SECRET_ENV",
    "TRAINJOB_GROUP",
    "TRAINJOB_PLURAL",
    "TRAINJOB_VERSION",
    "TrainJobLauncher",
    "TrainJobSpec",
    "build_trainjob",
    "job_state",
    "trainjob_name",
]

#: Trainer API coordinates (https://github.com/kubeflow/trainer, ``trainer.kubeflow.org/v1alpha1``).
TRAINJOB_GROUP = "trainer.kubeflow.org"
TRAINJOB_VERSION = "v1alpha1"
TRAINJOB_PLURAL = "trainjobs"
#: The torch ClusterTrainingRuntime the platform ships (infra/k8s/trainer/runtime.yaml).
RUNTIME_NAME = "uniss-torch-distributed"
#: Replicated job and container of a torch runtime that run the trainer (upstream ``torch-distributed``).
NODE_JOB = "node"
#: ``runtimePatches[].manager`` of the patches this platform writes.
PATCH_MANAGER = "uniss.ai/platform"

#: Cluster settings shared with the compiled pipeline (pipelines/retrain.py) and infra/k8s.
GPU_NODE_SELECTOR = ("cloud.google.com/gke-accelerator", "nvidia-h100-80gb")
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
CHECKPOINT_PVC = "uniss-checkpoints"
CHECKPOINT_MOUNT = "/checkpoints"
S3_SECRET = "uniss-s3"
S3_SECRET_ENV = {"access_key": "UNISS_S3_ACCESS_KEY", "secret_key": "UNISS_S3_SECRET_KEY"}

#: Environment the launching step forwards to the ranks (settings: S3 endpoint, MLflow URI, ...).
_FORWARD_ENV = re.compile(r"^(UNISS_|MLFLOW_)")
#: Record of the current attempt inside the work directory.
RECORD_FILE = "trainjob.json"


@dataclass(frozen=True)
class TrainJobSpec:
    """What a phase's TrainJob asks the cluster for.

    Attributes:
        nodes: training nodes (``numNodes``), >= 1.
        gpus_per_node: GPUs per node = ranks per node (``numProcPerNode``), >= 1.
        cpu_per_node: CPU request/limit per node (Kubernetes quantity); default 8 per GPU.
        memory_per_node: memory request/limit per node (quantity); default 64 GiB per GPU (the
            per-GPU share the single-pod training step asked for before).
        runtime: name of the torch ClusterTrainingRuntime referenced by ``runtimeRef``.
        image: trainer image (default: the project image of this package version, uniss/version.py).
        namespace: namespace of the TrainJob (default: the launching pod's own namespace, else
            env ``UNISS_TRAINJOB_NAMESPACE``, else ``kubeflow``).
        node_selector: GPU-pool node labels.
        tolerations: GPU-pool taint tolerations (dicts with Kubernetes field names).
        s3_secret / s3_secret_env: Kubernetes secret and its key -> env var map for the S3 keys.
        checkpoint_pvc / checkpoint_mount: the shared ReadWriteMany checkpoint volume and where
            every node mounts it (must be where the work directory lives).
        shm_size: size of the memory-backed ``/dev/shm`` (NCCL needs more than the 64 MiB default).
        poll_s: seconds between status polls.
    """

    nodes: int = 1
    gpus_per_node: int = 1
    cpu_per_node: str | None = None
    memory_per_node: str | None = None
    runtime: str = RUNTIME_NAME
    image: str = PROJECT_IMAGE
    namespace: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=lambda: {GPU_NODE_SELECTOR[0]: GPU_NODE_SELECTOR[1]})
    tolerations: tuple[Mapping[str, Any], ...] = (GPU_TOLERATION,)
    s3_secret: str = S3_SECRET
    s3_secret_env: Mapping[str, str] = field(default_factory=lambda: dict(S3_SECRET_ENV))
    checkpoint_pvc: str = CHECKPOINT_PVC
    checkpoint_mount: str = CHECKPOINT_MOUNT
    shm_size: str = "64Gi"
    poll_s: float = 20.0

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise TrainError(f"a TrainJob needs nodes >= 1 and gpus_per_node >= 1, got {self.nodes} x {self.gpus_per_node}")
        if self.cpu_per_node is None:
            object.__setattr__(self, "cpu_per_node", str(8 * self.gpus_per_node))
        if self.memory_per_node is None:
            object.__setattr__(self, "memory_per_node", f"{64 * self.gpus_per_node}Gi")

    @property
    def world_size(self) -> int:
        """Ranks over all nodes (``nodes x gpus_per_node``)."""
        return self.nodes * self.gpus_per_node


def trainjob_name(work: Path, attempt: int) -> str:
    """``uniss-<work dir name>-a<attempt>`` as a DNS-1035 label (lower case, ``-``, <= 63 chars).

    The work directory name is keyed by the phase inputs (training/workdir.py), so the same
    inputs give the same name and a retry can find its job; ``attempt`` counts replacements.
    """
    base = re.sub(r"[^a-z0-9-]+", "-", work.name.lower()).strip("-")
    suffix = f"-a{attempt}"
    return ("uniss-" + base)[: 63 - len(suffix)].rstrip("-") + suffix


def _secret_env(spec: TrainJobSpec) -> list[m.IoK8sApiCoreV1EnvVar]:
    return [m.IoK8sApiCoreV1EnvVar(name=env, value_from=m.IoK8sApiCoreV1EnvVarSource(
        secret_key_ref=m.IoK8sApiCoreV1SecretKeySelector(name=spec.s3_secret, key=key)))
        for key, env in sorted(spec.s3_secret_env.items())]


def build_trainjob(name: str, work: str | Path, spec: TrainJobSpec, *, namespace: str,
                   resume_from: str | None = None, env: Mapping[str, str] | None = None) -> m.TrainerV1alpha1TrainJob:
    """The ``TrainJob`` object of one phase attempt (Trainer API models; ``.to_dict()`` is the body
    to create).

    Args:
        name: object name (:func:`trainjob_name`).
        work: the phase work directory, on ``spec.checkpoint_mount``.
        spec: nodes, GPUs, resources, scheduling, secret and volume.
        namespace: the TrainJob's namespace.
        resume_from: checkpoint tag (``step<N>``) the ranks must resume from; passed as
            ``--resume-from`` so a rank that cannot see it (volume not shared) fails at once.
        env: extra plain environment for the ranks (settings forwarded from the launching step).

    Returns:
        ``TrainerV1alpha1TrainJob`` with ``numNodes = spec.nodes``, ``numProcPerNode =
        spec.gpus_per_node``, ``nvidia.com/gpu`` limit ``spec.gpus_per_node`` per node.

    Raises:
        TrainError: the work directory is not under the checkpoint mount (the other nodes could
            not see it).
    """
    work = Path(work)
    mount = Path(spec.checkpoint_mount)
    if mount not in (work, *work.parents):
        raise TrainError(f"work directory {work} is not on the shared checkpoint volume {mount}: the other nodes "
                         f"cannot see it (set UNISS_CHECKPOINT_ROOT={mount} in the launching step)")
    q = m.IoK8sApimachineryPkgApiResourceQuantity
    resources = m.IoK8sApiCoreV1ResourceRequirements(
        limits={"nvidia.com/gpu": q(str(spec.gpus_per_node)), "cpu": q(spec.cpu_per_node), "memory": q(spec.memory_per_node)},
        requests={"cpu": q(spec.cpu_per_node), "memory": q(spec.memory_per_node)},
    )
    plain = {"UNISS_CHECKPOINT_ROOT": str(mount), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
             **dict(env or {})}
    envs = [m.IoK8sApiCoreV1EnvVar(name=k, value=v) for k, v in sorted(plain.items())] + _secret_env(spec)
    args = ["-m", "training.recipe", "worker", "--work", str(work)]
    if resume_from:
        args += ["--resume-from", resume_from]
    pod_patch = m.TrainerV1alpha1PodSpecPatch(
        node_selector=dict(spec.node_selector),
        tolerations=[m.IoK8sApiCoreV1Toleration.from_dict(dict(t)) for t in spec.tolerations],
        volumes=[
            m.IoK8sApiCoreV1Volume(name="checkpoints", persistent_volume_claim=m.IoK8sApiCoreV1PersistentVolumeClaimVolumeSource(
                claim_name=spec.checkpoint_pvc)),
            m.IoK8sApiCoreV1Volume(name="dshm", empty_dir=m.IoK8sApiCoreV1EmptyDirVolumeSource(medium="Memory", size_limit=q(spec.shm_size))),
        ],
        containers=[m.TrainerV1alpha1ContainerPatch(name=NODE_JOB, volume_mounts=[
            m.IoK8sApiCoreV1VolumeMount(name="checkpoints", mount_path=str(mount)),
            m.IoK8sApiCoreV1VolumeMount(name="dshm", mount_path="/dev/shm"),
        ])],
    )
    patch = m.TrainerV1alpha1RuntimePatch(manager=PATCH_MANAGER, training_runtime_spec=m.TrainerV1alpha1TrainingRuntimeSpecPatch(
        template=m.TrainerV1alpha1JobSetTemplatePatch(spec=m.TrainerV1alpha1JobSetSpecPatch(replicated_jobs=[
            m.TrainerV1alpha1ReplicatedJobPatch(name=NODE_JOB, template=m.TrainerV1alpha1JobTemplatePatch(
                spec=m.TrainerV1alpha1JobSpecPatch(template=m.TrainerV1alpha1PodTemplatePatch(spec=pod_patch))))]))))
    return m.TrainerV1alpha1TrainJob(
        api_version=f"{TRAINJOB_GROUP}/{TRAINJOB_VERSION}",
        kind="TrainJob",
        metadata=m.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=name, namespace=namespace,
            labels={"app.kubernetes.io/part-of": "uniss-platform", "uniss.ai/work": work.name[:63]}),
        spec=m.TrainerV1alpha1TrainJobSpec(
            runtime_ref=m.TrainerV1alpha1RuntimeRef(api_group=TRAINJOB_GROUP, kind="ClusterTrainingRuntime", name=spec.runtime),
            trainer=m.TrainerV1alpha1Trainer(
                image=spec.image, command=["torchrun"], args=args, env=envs,
                num_nodes=spec.nodes, num_proc_per_node=spec.gpus_per_node, resources_per_node=resources),
            runtime_patches=[patch],
        ),
    )


def job_state(obj: Mapping[str, Any]) -> tuple[str, str]:
    """``(state, reason)`` of a TrainJob read from the API: ``Complete``, ``Failed`` (reason =
    the condition's ``reason: message``), ``Suspended`` or ``Running`` (no terminal condition yet;
    Trainer condition types ``Complete``/``Failed``/``Suspended``)."""
    job = m.TrainerV1alpha1TrainJob.from_dict(dict(obj))
    conds = {c.type: c for c in ((job.status.conditions if job.status else None) or []) if c.status == "True"}
    for kind in ("Failed", "Complete", "Suspended"):
        if kind in conds:
            c = conds[kind]
            return kind, f"{c.reason}: {c.message}".strip(": ")
    return "Running", ""


def _own_namespace() -> str:
    p = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return os.environ.get("UNISS_TRAINJOB_NAMESPACE") or (p.read_text().strip() if p.is_file() else "kubeflow")


def _default_clients() -> tuple[Any, Any]:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi(), client.CoreV1Api()


@dataclass
class TrainJobLauncher:
    """The cluster engine: run a prepared phase as a ``TrainJob`` and wait for it (see module doc).

    Args:
        spec: the job's shape (:class:`TrainJobSpec`).
        custom_api: ``kubernetes.client.CustomObjectsApi``-shaped client (create/get/delete
            namespaced custom objects); default: in-cluster config, else ``~/.kube/config``.
        core_api: ``CoreV1Api``-shaped client (list pods, read a pod's log) for the rank-0 log.
        log: where followed log lines and state changes go (default ``print``).
        sleep: the wait between polls (injectable for tests).
    """

    spec: TrainJobSpec
    custom_api: Any = None
    core_api: Any = None
    log: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep

    def _clients(self) -> tuple[Any, Any]:
        if self.custom_api is None or self.core_api is None:
            c, k = _default_clients()
            self.custom_api = self.custom_api or c
            self.core_api = self.core_api or k
        return self.custom_api, self.core_api

    def _get(self, ns: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.custom_api.get_namespaced_custom_object(TRAINJOB_GROUP, TRAINJOB_VERSION, ns, TRAINJOB_PLURAL, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise TrainError(f"cannot read TrainJob {ns}/{name}: {e.status} {e.reason}") from None

    def launch(self, work: Path, nproc: int, timeout_s: float | None = None) -> None:
        """Create (or find again) the phase's TrainJob, follow it to the end.

        Args:
            work: prepared work directory on the shared checkpoint volume.
            nproc: ranks the caller expects; must equal ``spec.nodes x spec.gpus_per_node``.
            timeout_s: seconds to wait (the job keeps running after a timeout; a rerun follows it).

        Raises:
            TrainError: ``nproc`` mismatch; the API refused the job; the job failed (message:
                the job's ``Failed`` reason and the rank-0 log tail); it completed but the ranks
                wrote no ``done.json`` on the shared volume; the timeout passed.
        """
        from kubernetes.client.exceptions import ApiException

        spec = self.spec
        if nproc != spec.world_size:
            raise TrainError(f"{nproc} ranks requested but the TrainJob runs {spec.nodes} nodes x {spec.gpus_per_node} GPUs "
                             f"= {spec.world_size} ranks (one process per GPU)")
        self._clients()
        work = Path(work)
        ns = spec.namespace or _own_namespace()
        rec_path = work / RECORD_FILE
        rec = json.loads(rec_path.read_text()) if rec_path.is_file() else {"attempt": 0, "name": None}
        existing = self._get(ns, rec["name"]) if rec.get("name") else None
        state = job_state(existing)[0] if existing is not None else None
        if state in (None, "Failed"):
            rec["attempt"] = int(rec["attempt"]) + 1
            rec["name"] = trainjob_name(work, rec["attempt"])
            resume = latest_tag(work / DS_DIR)
            env = {k: v for k, v in os.environ.items() if _FORWARD_ENV.match(k) and k not in spec.s3_secret_env.values()
                   and k != "UNISS_CHECKPOINT_ROOT"}
            job = build_trainjob(rec["name"], work, spec, namespace=ns, resume_from=resume, env=env)
            try:
                self.custom_api.create_namespaced_custom_object(TRAINJOB_GROUP, TRAINJOB_VERSION, ns, TRAINJOB_PLURAL, job.to_dict())
            except ApiException as e:
                raise TrainError(f"the cluster refused TrainJob {ns}/{rec['name']}: {e.status} {e.reason} {e.body or ''}".strip()) from None
            rec_path.write_text(json.dumps(rec))
            self.log(f"created TrainJob {ns}/{rec['name']} ({spec.nodes} nodes x {spec.gpus_per_node} GPUs, runtime "
                     f"{spec.runtime}" + (f", resuming from {resume})" if resume else ")"))
        else:
            self.log(f"following TrainJob {ns}/{rec['name']} ({state})")
        self._follow(ns, rec["name"], work, timeout_s)

    def _follow(self, ns: str, name: str, work: Path, timeout_s: float | None) -> None:
        t0 = time.monotonic()
        seen = 0
        while True:
            obj = self._get(ns, name)
            if obj is None:
                raise TrainError(f"TrainJob {ns}/{name} disappeared while running (deleted?)")
            state, reason = job_state(obj)
            text = self._rank0_log(ns, name)
            if len(text) > seen:
                for line in text[seen:].splitlines():
                    self.log(line)
                seen = len(text)
            if state == "Complete":
                if not (work / DONE_FILE).is_file():
                    raise TrainError(f"TrainJob {ns}/{name} completed but {work / DONE_FILE} is missing: the nodes do not "
                                     f"write to the volume this step reads (checkpoint PVC {self.spec.checkpoint_pvc})")
                return
            if state == "Failed":
                raise TrainError(f"TrainJob {ns}/{name} failed: {reason or 'no reason given'}; rank-0 log tail:\n{text[-3000:]}")
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                raise TrainError(f"TrainJob {ns}/{name} still {state.lower()} after {timeout_s:.0f} s (it keeps running; "
                                 "rerun the step to follow it again)")
            self.sleep(self.spec.poll_s)

    def _rank0_log(self, ns: str, name: str) -> str:
        """The log of node 0 (rank 0) so far, or ``""`` while it has no pod."""
        from kubernetes.client.exceptions import ApiException

        sel = (f"jobset.sigs.k8s.io/jobset-name={name},jobset.sigs.k8s.io/replicatedjob-name={NODE_JOB},"
               "batch.kubernetes.io/job-completion-index=0")
        try:
            pods = self.core_api.list_namespaced_pod(ns, label_selector=sel).items
            if not pods:
                return ""
            return self.core_api.read_namespaced_pod_log(pods[-1].metadata.name, ns, container=NODE_JOB) or ""
        except ApiException:
            return ""  # pod not started yet / log not ready: the next poll tries again

