"""The ``uniss`` command: one typer group per module in this package.

Each group lives in its own module exposing ``app`` (a ``typer.Typer``) and is registered here
only once it exists (no stubs).
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="uniss",
    help="UniSS Platform: build, train, evaluate, promote and serve expressive speech-to-speech translation models.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# --- registered groups (one line each) -------------------------------------------------------
from pipelines.cli import core as _core  # noqa: E402  (vocab, prompt)

_core.register(app)
from pipelines.cli import pipeline as _pipeline  # noqa: E402  (retrain, pipeline)

_pipeline.register(app)
from pipelines.cli import codec as _codec  # noqa: E402  (codec fit|encode|decode|roundtrip|info)

_codec.register(app)
from pipelines.cli import train as _train  # noqa: E402  (train)

_train.register(app)
from pipelines.cli import data as _data  # noqa: E402  (uniss data ...)

_data.register(app)
from pipelines.cli import stack as _stack  # noqa: E402  (stack up|down|status|env)

_stack.register(app)
from pipelines.cli import serve as _serve  # noqa: E402  (serve, translate)

_serve.register(app)
from pipelines.cli import evaluate as _evaluate  # noqa: E402  (evaluate, compare, promote, rollback)

_evaluate.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
