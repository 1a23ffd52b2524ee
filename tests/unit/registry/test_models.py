"""registry.models without a server: model sources and URI parsing (the MLflow paths are in
tests/integration/registry/test_models.py)."""

from pathlib import Path

import pytest

from registry.models import RegistryError, resolve_model_source, resolve_model_uri


def test_local_sources_pass_through_unchanged(tmp_path):
    assert resolve_model_source(tmp_path) == tmp_path
    assert resolve_model_source(str(tmp_path / "bundle")) == tmp_path / "bundle"
    assert resolve_model_source("~/released/UniSS") == Path("~/released/UniSS")  # the engine expands ~


def test_bad_registry_uris_are_typed_errors():
    with pytest.raises(RegistryError, match="not a registry URI"):
        resolve_model_uri("/some/dir")
    with pytest.raises(RegistryError, match="names no alias or version"):
        resolve_model_uri("models:/uniss-s2st")
