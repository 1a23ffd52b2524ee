"""``uniss stack up|down|status``: the embedded S3 (SeaweedFS) + MLflow + model server stack (``infra.local.stack``).

Exit codes: 0 healthy / done; 1 ``status`` found a service unhealthy; 2 a typed error (port taken,
server failed to start: the message quotes its log tail).
"""

from __future__ import annotations

import json
import time

import typer
from rich.table import Table

from pipelines.cli._common import console, friendly_errors

app = typer.Typer(name="stack", help="Embedded object store (SeaweedFS S3), MLflow tracking server and model server on 127.0.0.1.", no_args_is_help=True)


def _table(st) -> Table:
    t = Table(title=f"uniss stack ({st.home})")
    for col in ("service", "url", "pid(s)", "RSS MiB", "healthy", "model", "detail"):
        t.add_column(col, no_wrap=col in ("service", "url"))
    for s in st.services.values():
        t.add_row(
            s.name + ("" if s.embedded else " (external)"),
            s.url,
            ",".join(map(str, s.pids)) or "-",
            f"{s.rss_mb:.0f}" if s.rss_mb is not None else "-",
            "[green]yes[/]" if s.healthy else "[red]no[/]",
            f"v{s.model_version}" if s.model_version else "-",
            s.detail,
        )
    return t


@app.command("up")
@friendly_errors
def up_cmd(
    timeout_s: float = typer.Option(180.0, "--timeout-s", help="Seconds to wait for each service to become healthy."),
) -> None:
    """Start S3, MLflow and the model server (idempotent), wait until healthy, create the buckets."""
    from infra.local import stack

    t0 = time.perf_counter()
    st = stack.up(timeout_s=timeout_s)
    console.print(_table(st))
    console.print(f"healthy in {time.perf_counter() - t0:.1f} s. Clients: `eval $(uniss stack env)` or uniss.settings.get_settings().s3_env()")


@app.command("down")
@friendly_errors
def down_cmd() -> None:
    """Stop exactly the processes `uniss stack up` started in this workspace (data is kept)."""
    from infra.local import stack

    pids = stack.down()
    console.print(f"stopped {len(pids)} process(es): {', '.join(map(str, pids)) or 'none running'}")


@app.command("status")
@friendly_errors
def status_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Health of each service; exit code 1 when any is unhealthy."""
    from infra.local import stack

    st = stack.status()
    if as_json:
        typer.echo(json.dumps(st.to_dict(), indent=2))
    else:
        console.print(_table(st))
    if not st.healthy:
        raise typer.Exit(code=1)


@app.command("env")
@friendly_errors
def env_cmd() -> None:
    """Print `export` lines for boto3 / DVC / MLflow clients (AWS_*, MLFLOW_*)."""
    from uniss.settings import get_settings

    for k, v in get_settings().s3_env().items():
        typer.echo(f"export {k}={v}")


def register(root: typer.Typer) -> None:
    """Add the ``stack`` group to the root app."""
    root.add_typer(app, name="stack")
