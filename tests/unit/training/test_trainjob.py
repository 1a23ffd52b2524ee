"""The cluster engine (training/trainjob.py): the TrainJob object checked against the Kubeflow
Trainer API models, and create/follow/fail/resume against a fake Kubernetes client (no cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubeflow_trainer_api import models as m
from kubernetes.client.exceptions import ApiException

from training.checkpointer import check_resume_tag
from training.launch import engine_launcher
from training.trainjob import TrainJobLauncher, TrainJobSpec, build_trainjob, job_state, trainjob_name
from training.workdir import DONE_FILE, TrainError
from uniss.version import PROJECT_IMAGE

WORK = Path("/checkpoints/1_5b_phase1_0123456789abcdef")


def _paper_job(resume_from=None) -> m.TrainerV1alpha1TrainJob:
    return build_trainjob("uniss-x-a1", WORK, TrainJobSpec(nodes=2, gpus_per_node=8), namespace="kubeflow",
                          resume_from=resume_from)


def test_paper_trainjob_2_nodes_x_8_gpus_against_the_api_models():
    """Acceptance (issue 18): the 2 x 8 TrainJob round-trips through the Trainer API models and
    holds node count, GPU limits, runtime reference, image, secret env, volume, node selector and
    tolerations."""
    body = _paper_job().to_dict()
    job = m.TrainerV1alpha1TrainJob.from_dict(json.loads(json.dumps(body)))  # what the API server sees
    assert body["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and body["kind"] == "TrainJob"
    tr = job.spec.trainer
    assert tr.num_nodes == 2 and tr.num_proc_per_node == 8
    lim = {k: v.actual_instance for k, v in tr.resources_per_node.limits.items()}
    assert lim == {"nvidia.com/gpu": "8", "cpu": "64", "memory": "512Gi"}
    ref = job.spec.runtime_ref
    assert (ref.api_group, ref.kind, ref.name) == ("trainer.kubeflow.org", "ClusterTrainingRuntime", "uniss-torch-distributed")
    assert tr.image == PROJECT_IMAGE
    assert tr.command == ["torchrun"] and tr.args == ["-m", "training.recipe", "worker", "--work", str(WORK)]
    secret = {e.name: (e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key) for e in tr.env if e.value_from}
    assert secret == {"UNISS_S3_ACCESS_KEY": ("uniss-s3", "access_key"), "UNISS_S3_SECRET_KEY": ("uniss-s3", "secret_key")}
    assert {e.name: e.value for e in tr.env if not e.value_from}["UNISS_CHECKPOINT_ROOT"] == "/checkpoints"
    (patch,) = job.spec.runtime_patches
    (rj,) = patch.training_runtime_spec.template.spec.replicated_jobs
    assert rj.name == "node"
    pod = rj.template.spec.template.spec
    assert pod.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    vols = {v.name: v for v in pod.volumes}
    assert vols["checkpoints"].persistent_volume_claim.claim_name == "uniss-checkpoints"
    assert vols["dshm"].empty_dir.medium == "Memory"
    (c,) = pod.containers
    assert c.name == "node" and {vm.name: vm.mount_path for vm in c.volume_mounts} == {"checkpoints": "/checkpoints", "dshm": "/dev/shm"}


def test_resume_argument_and_work_dir_must_be_on_the_shared_volume(tmp_path):
    assert _paper_job("step500").spec.trainer.args[-2:] == ["--resume-from", "step500"]
    with pytest.raises(TrainError, match="shared checkpoint volume"):
        build_trainjob("j", tmp_path, TrainJobSpec(), namespace="ns")
    with pytest.raises(TrainError, match="nodes >= 1"):
        TrainJobSpec(nodes=0)


def test_trainjob_name_is_a_dns_label_keyed_by_the_work_dir():
    n = trainjob_name(WORK, 3)
    assert n == "uniss-1-5b-phase1-0123456789abcdef-a3" and len(n) <= 63
    assert len(trainjob_name(Path("/c/" + "x" * 200), 12)) <= 63


def test_check_resume_tag(tmp_path):
    (tmp_path / "latest").write_text("step20")
    check_resume_tag(tmp_path, "step20")
    check_resume_tag(tmp_path, "step10")
    with pytest.raises(TrainError, match="step30"):
        check_resume_tag(tmp_path, "step30")
    with pytest.raises(TrainError, match="no checkpoint"):
        check_resume_tag(tmp_path / "nope", "step1")


# ------------------------------------------------------------------ a fake Kubernetes API
def _cond(kind: str, reason: str = "", message: str = "") -> dict:
    return {"type": kind, "status": "True", "reason": reason or kind, "message": message,
            "lastTransitionTime": "2026-12-02T00:00:00Z"}


class FakeK8s:
    """``CustomObjectsApi`` + ``CoreV1Api`` in one: stores created TrainJobs; each ``get`` moves a
    job one step along the ``script`` (a list of condition lists) current when it was created;
    ``on_done`` runs when a job reports ``Complete``."""

    def __init__(self, script: list[list[dict]], log: str = "rank0: step 1 loss 5.0\n", on_done=None):
        self.script, self.log_text, self.on_done = script, log, on_done
        self.jobs: dict[str, dict] = {}
        self.scripts: dict[str, tuple[list, list]] = {}  # name -> (script, [gets])
        self.created: list[dict] = []

    def create_namespaced_custom_object(self, group, version, ns, plural, body):
        assert (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
        self.created.append(body)
        self.jobs[body["metadata"]["name"]] = {**body, "status": {"conditions": []}}
        self.scripts[body["metadata"]["name"]] = (self.script, [0])
        return body

    def get_namespaced_custom_object(self, group, version, ns, plural, name):
        if name not in self.jobs:
            raise ApiException(status=404, reason="Not Found")
        script, gets = self.scripts[name]
        conds = script[min(gets[0], len(script) - 1)]
        gets[0] += 1
        self.jobs[name]["status"] = {"conditions": conds}
        if conds and conds[0]["type"] == "Complete" and self.on_done:
            self.on_done()
        return self.jobs[name]

    def list_namespaced_pod(self, ns, label_selector):
        assert "jobset.sigs.k8s.io/jobset-name=" in label_selector and "job-completion-index=0" in label_selector
        return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name="pod-0"))])

    def read_namespaced_pod_log(self, name, ns, container):
        assert container == "node"
        return self.log_text


def _launcher(fake: FakeK8s, lines: list[str], **kw) -> TrainJobLauncher:
    return TrainJobLauncher(TrainJobSpec(nodes=2, gpus_per_node=8, namespace="kubeflow", checkpoint_mount="/", poll_s=0, **kw),
                            custom_api=fake, core_api=fake, log=lines.append, sleep=lambda s: None)


def test_launch_creates_follows_and_succeeds(tmp_path):
    fake = FakeK8s([[], [], [_cond("Complete")]], on_done=lambda: (tmp_path / DONE_FILE).write_text("{}"))
    lines: list[str] = []
    _launcher(fake, lines).launch(tmp_path, 16)
    (body,) = fake.created
    assert body["spec"]["trainer"]["numNodes"] == 2 and "--resume-from" not in body["spec"]["trainer"]["args"]
    assert any("created TrainJob kubeflow/" in ln for ln in lines) and "rank0: step 1 loss 5.0" in lines
    assert lines.count("rank0: step 1 loss 5.0") == 1  # the log is followed, not repeated


def test_failure_reason_propagates(tmp_path):
    fake = FakeK8s([[], [_cond("Failed", "BackoffLimitExceeded", "node-1 OOMKilled")]], log="Traceback: CUDA out of memory\n")
    with pytest.raises(TrainError, match="BackoffLimitExceeded: node-1 OOMKilled") as e:
        _launcher(fake, []).launch(tmp_path, 16)
    assert "CUDA out of memory" in str(e.value)


def test_retry_after_failure_resumes_from_the_last_checkpoint(tmp_path):
    """A rerun of the step replaces the failed job by attempt 2 that resumes from ``ds/latest``."""
    fake = FakeK8s([[_cond("Failed", "PodFailed", "preempted")]])
    with pytest.raises(TrainError, match="preempted"):
        _launcher(fake, []).launch(tmp_path, 16)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "latest").write_text("step40")
    fake.script = [[], [_cond("Complete")]]
    fake.on_done = lambda: (tmp_path / DONE_FILE).write_text("{}")
    _launcher(fake, []).launch(tmp_path, 16)
    first, second = fake.created
    assert first["metadata"]["name"].endswith("-a1") and second["metadata"]["name"].endswith("-a2")
    assert second["spec"]["trainer"]["args"][-2:] == ["--resume-from", "step40"]


def test_rerun_while_running_follows_the_same_job(tmp_path):
    fake = FakeK8s([[], [], [_cond("Complete")]])
    with pytest.raises(TrainError, match="still running"):
        _launcher(fake, []).launch(tmp_path, 16, timeout_s=0)
    fake.on_done = lambda: (tmp_path / DONE_FILE).write_text("{}")
    lines: list[str] = []
    _launcher(fake, lines).launch(tmp_path, 16)
    assert len(fake.created) == 1 and any(ln.startswith("following TrainJob") for ln in lines)


def test_complete_without_done_file_and_rank_mismatch_and_api_refusal(tmp_path):
    fake = FakeK8s([[_cond("Complete")]])
    with pytest.raises(TrainError, match="done.json is missing"):
        _launcher(fake, []).launch(tmp_path, 16)
    with pytest.raises(TrainError, match="2 nodes x 8 GPUs = 16"):
        _launcher(FakeK8s([[]]), []).launch(tmp_path / "w", 2)

    class Refusing(FakeK8s):
        def create_namespaced_custom_object(self, *a, **k):
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(TrainError, match="403 Forbidden"):
        _launcher(Refusing([[]]), []).launch(tmp_path / "w2", 16)


def test_job_state_reads_conditions():
    base = _paper_job().to_dict()
    assert job_state(base) == ("Running", "")
    assert job_state({**base, "status": {"conditions": [_cond("Failed", "DeadlineExceeded", "too slow")]}}) == \
        ("Failed", "DeadlineExceeded: too slow")


def test_engine_launcher_takes_the_shape_from_the_phase_config():
    lz, n = engine_launcher("trainjob", "1_5b_phase1.yaml", [], 2)
    assert isinstance(lz, TrainJobLauncher) and n == 16 and (lz.spec.nodes, lz.spec.gpus_per_node) == (2, 8)
    lz, n = engine_launcher("trainjob", "1_5b_phase2.yaml", [], 2, nodes=4)
    assert n == 32
    _, n = engine_launcher("torchrun", "tiny_phase1.yaml", [], 2)
    assert n == 2
    with pytest.raises(TrainError, match="unknown training engine"):
        engine_launcher("slurm", "tiny_phase1.yaml", [], 2)
