"""registry.models._quiet_pyfunc_log drops only the two known-harmless mlflow.pyfunc warnings."""

from __future__ import annotations

import logging

from registry.models import _quiet_pyfunc_log


def test_only_the_harmless_pyfunc_warnings_are_dropped(caplog):
    log = logging.getLogger("mlflow.pyfunc")
    with caplog.at_level(logging.WARNING, logger="mlflow.pyfunc"), _quiet_pyfunc_log():
        log.warning("Passing a Python object as `python_model` causes it to be serialized using CloudPickle")
        log.warning("Failed to infer model signature: Type hint ...")
        log.warning("Something else went wrong")
    assert [r.getMessage() for r in caplog.records] == ["Something else went wrong"]
    with caplog.at_level(logging.WARNING, logger="mlflow.pyfunc"):
        log.warning("Failed to infer model signature: after the block it shows again")
    assert caplog.records[-1].getMessage().startswith("Failed to infer")
