"""Vector quantization of the lite codec: scikit-learn k-means codebooks and nearest-centroid lookup.

Shape legend:
    n  rows (frames, tokens or clips) to quantize
    d  row width (512 Whisper dims, 80 mel bins, or 8 speaker sub-vector dims)
    k  codebook size
"""

from __future__ import annotations

import warnings

import numpy as np

from uniss.codecs.lite.config import LiteCodecConfig


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) of each row: ``(n, d)`` -> ``(n,)`` int64 (scikit-learn)."""
    from sklearn.metrics import pairwise_distances_argmin

    return pairwise_distances_argmin(x.astype(np.float32), centroids.astype(np.float32)).astype(np.int64)


def kmeans(x: np.ndarray, k: int, cfg: LiteCodecConfig, seed: int, minibatch: bool = True) -> np.ndarray:
    """scikit-learn k-means centroids ``(min(k, n), d)`` float32 of ``x`` ``(n, d)``.

    ``MiniBatchKMeans`` (``cfg.kmeans_batch``, ``cfg.kmeans_max_iter`` passes) when ``minibatch`` and
    there are more than ``4 k`` rows, else full ``KMeans`` (100 iterations); one init, ``seed``.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.exceptions import ConvergenceWarning

    k = max(1, min(k, len(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if minibatch and len(x) > 4 * k:
            km = MiniBatchKMeans(
                n_clusters=k,
                batch_size=max(cfg.kmeans_batch, 3 * k),
                max_iter=cfg.kmeans_max_iter,
                n_init=1,
                init_size=min(len(x), 3 * k),
                random_state=seed,
                reassignment_ratio=0.001,
            )
        else:
            km = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed)
        km.fit(x.astype(np.float32))
    return km.cluster_centers_.astype(np.float32)


def subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``n`` rows of ``x`` ``(N, d)``, drawn without replacement by ``rng``, in their order."""
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]
