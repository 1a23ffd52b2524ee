"""Shared CLI glue: typed errors become one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

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


def parse_sources(values: list[str] | None) -> list[str]:
    """typer callback of ``--source``: each ``KIND:PATH`` is checked (known kind, existing path of the
    right type, :func:`uniss.unist.ingest.parse_source`) and returned normalised (absolute path).

    Raises:
        typer.BadParameter: unknown kind or missing path (the CLI exits with code 2 naming ``--source``).
    """
    from uniss.unist.errors import UnistError
    from uniss.unist.ingest import parse_source

    out = []
    for v in values or []:
        try:
            out.append(str(parse_source(v)))
        except UnistError as e:
            raise typer.BadParameter(str(e)) from None
    return out


def sources_spec(sources: list[str], directions: list[str], split: str, limit: int,
                 test_share: float, dev_share: float) -> dict[str, Any]:
    """The ``sources`` pipeline parameter (:class:`uniss.unist.ingest.IngestSpec` as a dict) of the
    ``--source/--direction/--split/--limit/--test-share/--dev-share`` options; ``{}`` without ``--source``.

    Raises:
        typer.BadParameter: an unknown direction or split (names the option).
    """
    from uniss.unist.ingest import DIRECTIONS

    if not sources:
        return {}
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise typer.BadParameter(f"unknown direction {bad[0]!r}; expected one of {list(DIRECTIONS)}",
                                 param_hint="'--direction'")
    if split not in ("speaker", "given"):
        raise typer.BadParameter(f"split must be 'speaker' or 'given', got {split!r}", param_hint="'--split'")
    return {"sources": list(sources), "directions": list(directions or DIRECTIONS), "split": split,
            "limit": int(limit), "test_share": float(test_share), "dev_share": float(dev_share)}


#: Help texts of the source options shared by ``uniss data build`` and ``uniss retrain``.
SOURCE_HELP = ("corpus KIND:PATH (repeatable): manifest:FILE (.csv/.tsv/.jsonl), librispeech:DIR, "
               "covost2:TSV, cvss:DIR, or demo (the built-in corpus); default: the demo corpus of --size")
DIRECTION_HELP = "keep this translation direction (repeatable: en-zh, zh-en; default both)"
SPLIT_HELP = ("speaker: whole speakers go to dev/test so held-out speakers never speak a training row; "
              "given: keep the corpus's own split")
LIMIT_HELP = "at most N utterances per direction (0 = all)"

#: The own-data options shared by ``uniss data build|source`` and ``uniss retrain`` (issue 19), as
#: ``Annotated`` typer options so each command declares them in one line each.
SourceOption = Annotated[list[str], typer.Option("--source", callback=parse_sources, metavar="KIND:PATH", help=SOURCE_HELP)]
DirectionOption = Annotated[list[str], typer.Option("--direction", help=DIRECTION_HELP)]
SplitOption = Annotated[str, typer.Option(help=SPLIT_HELP)]
LimitOption = Annotated[int, typer.Option(min=0, help=LIMIT_HELP)]
TestShareOption = Annotated[float, typer.Option(min=0.0, max=0.9, help="speaker split: target share of test utterances")]
DevShareOption = Annotated[float, typer.Option(min=0.0, max=0.9, help="speaker split: target share of dev utterances")]
