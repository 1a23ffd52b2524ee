"""One typed model of the repository's whole ``params.yaml`` (DVC params).

Sections (each documented in ``params.yaml`` with its source):

- ``data``: UniST construction, :class:`uniss.unist.params.DataParams`;
- ``gate``: promotion thresholds, :class:`uniss.gate.GateThresholds`;
- ``pipeline``: the ``uniss retrain --local --size`` presets, :class:`PipelineParams`.

Unknown keys are rejected at every level. The per-section readers
(``uniss.unist.params.load_params``, ``uniss.gate.load_thresholds``,
``pipelines.runner.load_params``) are views of :func:`load_project_params`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from uniss.errors import UnissError
from uniss.gate import GateThresholds
from uniss.settings import REPO_ROOT
from uniss.unist.params import DataParams

__all__ = ["PARAMS_FILE", "ParamsError", "PipelineParams", "PipelinePreset", "ProjectParams", "load_project_params",
           "pipeline_codec"]

#: Default params file: the repository's ``params.yaml``.
PARAMS_FILE = REPO_ROOT / "params.yaml"


class ParamsError(UnissError, ValueError):
    """``params.yaml`` is not a YAML mapping, or a section has invalid values or unknown keys."""


class PipelinePreset(BaseModel):
    """One ``pipeline.<size>`` preset.

    Attributes:
        train_overrides: ``key=value`` training-config overrides applied to every phase.
        eval_limit: utterances per direction evaluated (0 = the whole test split).
        codec: lite codec preset the ``fit_codec`` step fits (``uniss.codecs.lite.LiteCodecConfig.PRESETS``;
            empty = the size's own name, i.e. codec v2).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_overrides: tuple[str, ...] = ()
    eval_limit: int = Field(0, ge=0)
    codec: str = ""


class PipelineParams(BaseModel):
    """The ``pipeline:`` section: presets ``tiny`` (CI) and ``demo`` (``make demo``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiny: PipelinePreset = PipelinePreset()
    demo: PipelinePreset = PipelinePreset()

    def codec_for(self, size: str) -> str:
        """The lite codec preset a ``size`` (``tiny`` | ``demo``) fits: ``pipeline.<size>.codec``, else
        the size's own name (codec v2, the presets' names before v3).

        Raises:
            ParamsError: ``size`` is not ``tiny`` or ``demo``.
        """
        if size not in ("tiny", "demo"):
            raise ParamsError(f"unknown size {size!r}; expected tiny or demo")
        return getattr(self, size).codec or size


class ProjectParams(BaseModel):
    """The whole ``params.yaml``; a missing section takes its model's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: DataParams = Field(default_factory=DataParams)
    gate: GateThresholds = Field(default_factory=GateThresholds)
    pipeline: PipelineParams = Field(default_factory=PipelineParams)


def read_params_yaml(path: str | Path | None = None) -> dict:
    """The raw mapping in ``params.yaml`` (``{}`` when the file is absent or empty).

    Raises:
        ParamsError: not valid YAML, or not a mapping.
    """
    p = Path(path) if path is not None else PARAMS_FILE
    if not p.exists():
        return {}
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(d, dict):
        raise ParamsError(f"{p} must hold a YAML mapping")
    return d


def load_project_params(path: str | Path | None = None) -> ProjectParams:
    """Read and validate the whole ``params.yaml`` (default: the repository's).

    Raises:
        ParamsError: not YAML / not a mapping, or invalid values / unknown keys in any section
            (the message names the file and the offending keys).
    """
    raw = read_params_yaml(path)
    raw = {k: (v if v is not None else {}) for k, v in raw.items()}
    try:
        return ProjectParams.model_validate(raw)
    except ValidationError as e:
        raise ParamsError(f"invalid params ({Path(path) if path is not None else PARAMS_FILE}): {e}") from None


def pipeline_codec(size: str, path: str | Path | None = None) -> str:
    """The lite codec preset of ``size`` in ``params.yaml`` (:meth:`PipelineParams.codec_for`): the one
    preset both the retraining pipeline's ``fit_codec`` step and ``uniss data build`` fit, so a data
    version built by hand carries the pipeline's codec.

    Raises:
        ParamsError: invalid ``params.yaml``, or ``size`` not ``tiny`` / ``demo``.
    """
    return load_project_params(path).pipeline.codec_for(size)
