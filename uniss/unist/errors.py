"""Typed errors of the UniST data product (all subclass :class:`uniss.errors.UnissError`)."""

from __future__ import annotations

from uniss.errors import UnissError


class UnistError(UnissError):
    """Base of every UniST data error."""


class ManifestError(UnistError, ValueError):
    """A malformed source manifest (CoVoST/CVSS TSV, CSV, JSONL, LibriSpeech transcript file).

    The message names the file, the line number (1-based) and the field.
    """


class DataValidationError(UnistError, ValueError):
    """The Great Expectations gate failed.

    Attributes:
        failures: list of ``{"expectation", "column", "unexpected_count", "row_ids"}`` dicts.
    """

    def __init__(self, message: str, failures: list[dict] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class DataNotValidatedError(UnistError):
    """A dataset whose ``manifest["validation"]["passed"]`` is not true was asked for training."""


class DataIntegrityError(UnistError):
    """A shard whose md5 does not match the manifest, or a missing shard/manifest."""


class VersioningError(UnistError):
    """The DVC data registry failed (unknown version, git/dvc command failed, remote unreachable)."""
