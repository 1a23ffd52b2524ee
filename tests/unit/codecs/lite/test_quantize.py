"""k-means codebooks and nearest-centroid lookup on tiny arrays."""

from __future__ import annotations

import numpy as np

from uniss.codecs.lite import LiteCodecConfig
from uniss.codecs.lite.quantize import kmeans, nearest, subsample


def test_nearest_and_kmeans_recover_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], np.float32)  # (3, 2)
    x = np.concatenate([c + 0.1 * rng.standard_normal((50, 2)) for c in centres]).astype(np.float32)  # (150, 2)
    cb = kmeans(x, 3, LiteCodecConfig.tiny(), seed=0)  # (3, 2)
    assert cb.shape == (3, 2) and cb.dtype == np.float32
    codes = nearest(x, cb)  # (150,)
    assert codes.dtype == np.int64 and codes.shape == (150,)
    assert [len(set(codes[i : i + 50].tolist())) for i in (0, 50, 100)] == [1, 1, 1]
    assert kmeans(x[:2], 8, LiteCodecConfig.tiny(), seed=0).shape == (2, 2)  # capped by the rows


def test_subsample_keeps_order():
    x = np.arange(20)[:, None]
    assert subsample(x, 50, np.random.default_rng(0)) is x
    s = subsample(x, 5, np.random.default_rng(0))
    assert s.shape == (5, 1) and (np.diff(s[:, 0]) > 0).all()
