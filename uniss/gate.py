"""Evaluation gate: may a challenger model replace the current champion?

A pure function of (challenger metrics, champion metrics or ``None``, thresholds): no I/O, no MLflow.
The caller (``registry/models.py``) reads the metrics, calls :func:`decide`, and logs the decision.

Rules (issue "Evaluation, ablations, evaluation gate, MLflow registry", item 4):

1. **Absolute floors**: for each gated mode and direction, every metric in ``floors`` must be
   ``>= floor`` (``<= ceiling`` for lower-is-better metrics such as ``rtf``, via ``ceilings``).
2. **Non-regression vs champion**: for each metric in ``non_regression`` (default Speech-BLEU and
   SLC-0.2, per direction), ``challenger >= champion - tolerance``. Tolerances are in the metric's
   own units (BLEU points; SLC share). Without a champion (first model) this rule is skipped.

A metric the challenger lacks fails its check (no silent pass); a metric the champion lacks skips
that regression check with a note in the check (the older champion never measured it). A gated
(direction, mode) of which the challenger has no metric at all (the evaluation skipped the direction,
e.g. no test rows for it) fails one ``coverage`` check naming the direction and the gated metrics it
lacks, in place of its per-metric checks, even when no floor applies and the champion lacks it too.

Metric keys are flat: ``<metric>.<direction>.<mode>`` (``uniss.metrics.metric_key``), e.g.
``speech_bleu.en-zh.quality``. Thresholds come from the ``gate:`` section of ``params.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from uniss.errors import UnissError
from uniss.metrics import metric_key

#: Float slack so that a value exactly at the floor or tolerance edge passes.
_EPS = 1e-9


class GateConfigError(UnissError, ValueError):
    """The ``gate:`` section is missing or malformed."""


class GateRefusedError(UnissError):
    """A promotion was refused by the gate; ``decision`` holds the checks and reasons."""

    def __init__(self, message: str, decision: GateDecision):
        super().__init__(message)
        self.decision = decision


class GateThresholds(BaseModel):
    """Gate thresholds (``params.yaml`` ``gate:``); unknown keys are rejected.

    Attributes:
        modes: inference modes whose metrics are gated (``quality``/``performance``/``direct``).
        directions: translation directions gated (``en-zh``, ``zh-en``).
        floors: metric -> minimum value (higher-is-better metrics), per mode and direction.
        ceilings: metric -> maximum value (lower-is-better metrics, e.g. ``rtf``).
        non_regression: metric -> largest allowed drop vs the champion, in the metric's units.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    modes: tuple[str, ...] = ("quality",)
    directions: tuple[str, ...] = ("en-zh", "zh-en")
    floors: dict[str, float] = Field(default_factory=dict)
    ceilings: dict[str, float] = Field(default_factory=dict)
    non_regression: dict[str, float] = Field(default_factory=lambda: {"speech_bleu": 1.0, "slc_0.2": 0.05})

    @field_validator("non_regression")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        for k, tol in v.items():
            if tol < 0:
                raise ValueError(f"non_regression tolerance for {k} must be >= 0, got {tol}")
        return v

    @field_validator("modes", "directions")
    @classmethod
    def _non_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("must list at least one entry")
        return v


def load_thresholds(params_path: str | Path = "params.yaml") -> GateThresholds:
    """Read the ``gate:`` section of ``params.yaml`` (a view of :func:`uniss.params.load_project_params`;
    the whole file is validated).

    Raises:
        GateConfigError: file missing, no ``gate:`` section, or invalid values/unknown keys.
    """
    from uniss.params import ParamsError, load_project_params, read_params_yaml

    p = Path(params_path)
    if not p.is_file():
        raise GateConfigError(f"params file not found: {p}")
    try:
        if "gate" not in read_params_yaml(p):
            raise GateConfigError(f"{p} has no 'gate:' section")
        return load_project_params(p).gate
    except ParamsError as e:
        raise GateConfigError(f"invalid gate config in {p}: {e}") from None


@dataclass(frozen=True)
class GateCheck:
    """One check of the gate.

    Attributes:
        kind: ``floor``, ``ceiling``, ``regression``, or ``coverage`` (the challenger has no metric of a
            gated direction and mode; only failed ones are recorded).
        key: flat metric key (``speech_bleu.en-zh.quality``; ``*.zh-en.quality`` for ``coverage``).
        value: challenger value (``nan`` when missing).
        threshold: the bound the value was compared with (for ``regression``: champion - tolerance).
        passed: whether the check passed.
        message: one human-readable line.
        champion: champion value (``regression`` only).
        skipped: True when the check could not apply (champion lacks the metric).
    """

    kind: Literal["floor", "ceiling", "regression", "coverage"]
    key: str
    value: float
    threshold: float
    passed: bool
    message: str
    champion: float | None = None
    skipped: bool = False


@dataclass(frozen=True)
class GateDecision:
    """Outcome of :func:`decide`: ``passed`` iff every check passed; ``reasons`` = failed messages."""

    passed: bool
    reasons: list[str]
    checks: list[GateCheck] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-friendly form (for logging as an MLflow artifact)."""
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "checks": [c.__dict__ for c in self.checks],
        }

    def summary(self) -> str:
        """One line: ``PASSED (n checks)`` or ``REFUSED: reason; reason``."""
        if self.passed:
            return f"PASSED ({len(self.checks)} checks)"
        return "REFUSED: " + "; ".join(self.reasons)


def _num(m: Mapping[str, float] | None, key: str) -> float | None:
    if m is None or key not in m or m[key] is None:
        return None
    v = float(m[key])
    return None if math.isnan(v) else v


def _coverage(challenger: Mapping[str, float], champion: Mapping[str, float] | None, thresholds: GateThresholds,
              direction: str, mode: str) -> GateCheck | None:
    """A failed ``coverage`` check when ``challenger`` has no finite metric ``<metric>.<direction>.<mode>``
    (slices such as ``.../seen`` aside), naming the gated metrics it lacks; ``None`` when it has one."""
    def finite(v: object) -> bool:
        try:
            return v is not None and math.isfinite(float(v))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False

    suffix = f".{direction}.{mode}"
    if any(str(k).endswith(suffix) and finite(v) for k, v in challenger.items()):
        return None
    gated = [*thresholds.floors, *thresholds.ceilings, *(thresholds.non_regression if champion is not None else ())]
    keys = ", ".join(metric_key(m, direction, mode) for m in dict.fromkeys(gated)) or "every metric"
    return GateCheck("coverage", f"*{suffix}", float("nan"), float("nan"), False,
                     f"direction {direction} has no {mode} metrics in the challenger (not evaluated, e.g. no test "
                     f"rows for {direction}): missing {keys}")


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    thresholds: GateThresholds,
) -> GateDecision:
    """Gate decision for a challenger.

    Args:
        challenger: flat metrics of the challenger (``speech_bleu.en-zh.quality`` -> 21.3, ...).
        champion: flat metrics of the current champion, or ``None`` when there is none.
        thresholds: :class:`GateThresholds`.
    Returns:
        :class:`GateDecision` (never raises for bad metric values: a missing/NaN challenger metric
        is a failed check with its reason; a gated direction and mode without any challenger metric
        is one failed ``coverage`` check naming the direction and the metrics it lacks).
    """
    checks: list[GateCheck] = []
    for mode in thresholds.modes:
        for direction in thresholds.directions:
            missing = _coverage(challenger, champion, thresholds, direction, mode)
            if missing is not None:  # one reason for the whole direction, not one per metric
                checks.append(missing)
                continue
            for metric, floor in thresholds.floors.items():
                key = metric_key(metric, direction, mode)
                v = _num(challenger, key)
                if v is None:
                    checks.append(GateCheck("floor", key, float("nan"), floor, False, f"{key} missing from challenger metrics"))
                    continue
                ok = v >= floor - _EPS
                checks.append(GateCheck("floor", key, v, floor, ok,
                                        f"{key} = {v:.4g} {'>=' if ok else '<'} floor {floor:.4g}"))
            for metric, ceiling in thresholds.ceilings.items():
                key = metric_key(metric, direction, mode)
                v = _num(challenger, key)
                if v is None:
                    checks.append(GateCheck("ceiling", key, float("nan"), ceiling, False, f"{key} missing from challenger metrics"))
                    continue
                ok = v <= ceiling + _EPS
                checks.append(GateCheck("ceiling", key, v, ceiling, ok,
                                        f"{key} = {v:.4g} {'<=' if ok else '>'} ceiling {ceiling:.4g}"))
            if champion is None:
                continue
            for metric, tol in thresholds.non_regression.items():
                key = metric_key(metric, direction, mode)
                v = _num(challenger, key)
                c = _num(champion, key)
                if c is None:
                    checks.append(GateCheck("regression", key, v if v is not None else float("nan"), float("nan"),
                                            True, f"{key}: champion has no value, regression check skipped",
                                            champion=None, skipped=True))
                    continue
                bound = c - tol
                if v is None:
                    checks.append(GateCheck("regression", key, float("nan"), bound, False,
                                            f"{key} missing from challenger metrics (champion {c:.4g})", champion=c))
                    continue
                ok = v >= bound - _EPS
                msg = (f"{key} = {v:.4g} vs champion {c:.4g} (tolerance {tol:.4g}): "
                       + ("no regression" if ok else f"regressed by {c - v:.4g}"))
                checks.append(GateCheck("regression", key, v, bound, ok, msg, champion=c))
    reasons = [c.message for c in checks if not c.passed]
    return GateDecision(passed=not reasons, reasons=reasons, checks=checks)
