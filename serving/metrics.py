"""Prometheus metrics of the UniSS model server, labelled by model name and registered version.

KServe 0.21 already exposes ``GET /metrics`` (``prometheus_client`` default registry,
``kserve/protocol/rest/server.py``) with ``request_preprocess_seconds``,
``request_predict_seconds``, ``request_postprocess_seconds`` and ``request_explain_seconds``
histograms labelled by ``model_name`` only (``kserve/metrics.py``): no request count, no error
count, no model version. This module adds those to the same registry, so the same endpoint
serves them:

- ``uniss_requests_total{model_name, model_version, code}``: requests answered, by HTTP status.
- ``uniss_request_errors_total{model_name, model_version, error}``: failed requests, by exception class.
- ``uniss_request_duration_seconds{model_name, model_version}``: whole-request latency (preprocess
  + queue + engine + encode), seconds.
- ``uniss_requests_in_flight{model_name, model_version}``: requests being processed now.
- ``uniss_model_info{model_name, model_version, source}``: 1 for the model version being served.
- ``uniss_model_loads_total{model_name, result}``: (re)loads through the model repository,
  ``result`` = ``ok`` or ``error``.

The ``model_version`` label is ``""`` for a model that does not come from the registry (a bundle
directory). Updated by :class:`serving.predictor.UnissPredictor` and :mod:`serving.server`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["ERRORS", "IN_FLIGHT", "LATENCY", "LOADS", "MODEL_INFO", "REQUESTS"]

_LABELS = ("model_name", "model_version")

#: Latency buckets, seconds: a tiny model answers in ~0.1 s, a long clip on CPU in tens of seconds.
BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

REQUESTS = Counter("uniss_requests", "Requests answered, by HTTP status.", [*_LABELS, "code"])
ERRORS = Counter("uniss_request_errors", "Failed requests, by exception class.", [*_LABELS, "error"])
LATENCY = Histogram("uniss_request_duration_seconds", "Whole-request latency, seconds.", list(_LABELS), buckets=BUCKETS_S)
IN_FLIGHT = Gauge("uniss_requests_in_flight", "Requests being processed now.", list(_LABELS))
MODEL_INFO = Gauge("uniss_model_info", "1 for the model version being served.", [*_LABELS, "source"])
LOADS = Counter("uniss_model_loads", "Model (re)loads through the model repository.", ["model_name", "result"])
