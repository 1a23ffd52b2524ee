"""Recipe (training/recipe.py): the paper's LR schedules. The recipe's setup/train/cleanup run for
real in the slow 2-rank ZeRO-3 test of test_launch.py."""

import pytest

from training.config import load_config
from training.recipe import lr_lambda


def test_lr_schedules_follow_the_paper():
    p1 = load_config("tiny_phase1", ["optim.warmup_steps=10"])
    f = lr_lambda(p1, 100)
    assert f(0) == pytest.approx(0.1) and f(9) == 1.0 and f(50) == 1.0
    p2 = load_config("tiny_phase2")
    f = lr_lambda(p2, 200)  # 5% of 200 = 10 warm-up steps
    assert f(4) == pytest.approx(0.5) and f(10) == 1.0 and f(199) == 1.0
    p3 = load_config("tiny_phase3")
    f = lr_lambda(p3, 11)
    assert f(0) == 1.0 and f(10) == pytest.approx(0.1) and f(5) == pytest.approx(0.55)


def test_peak_rss_per_rank_in_a_one_rank_group(tmp_path):
    """The per-rank peak RSS is this process's high-water mark (getrusage), in GiB, at its rank."""
    import resource

    import torch.distributed as dist

    from training.recipe import peak_rss_gib_per_rank, release_freed_memory

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        release_freed_memory()  # never raises
        (peak,) = peak_rss_gib_per_rank(1, 0)
        assert 0 < peak <= round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3) + 1e-3
        assert 0.01 < peak < 64
    finally:
        dist.destroy_process_group()
