"""DNSMOS.score (P.808 only) equals speechmos' full P.835+P.808 call's p808_mos, on short and long clips."""

from __future__ import annotations

import numpy as np
import pytest

from uniss.engines.mos import DNSMOS


@pytest.fixture(scope="module")
def dnsmos():
    return DNSMOS()


@pytest.mark.parametrize("seconds", [1.3, 4.0, 10.5])
def test_score_equals_reference_p808(dnsmos, seconds):
    rng = np.random.default_rng(int(seconds * 10))
    t = np.arange(int(seconds * 16000)) / 16000
    w = (0.2 * np.sin(2 * np.pi * (150 + 50 * np.sin(3 * t)) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    assert dnsmos.score([w])[0] == pytest.approx(dnsmos.details(w)["p808_mos"], abs=1e-5)
