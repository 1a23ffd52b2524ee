"""Shared CLI glue: typed errors become one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from uniss.errors import UnissError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Decorator for CLI commands: a :class:`UnissError` (or ``FileNotFoundError``) prints
    ``error: <message>`` on stderr and exits with code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UnissError, FileNotFoundError) as e:
            err_console.print(f"[bold red]error:[/] {type(e).__name__}: {e}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def parse_int_list(value: str, name: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``.

    Raises:
        typer.BadParameter: a non-integer item.
    """
    if not value.strip():
        return []
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{name} must be comma-separated integers, got {value!r}") from None
