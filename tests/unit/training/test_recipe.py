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
