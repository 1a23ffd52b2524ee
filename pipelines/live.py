"""A quiet terminal for local pipeline runs: a live step view, and every step's output in its own log.

kfp.local 2.17 runs each task in the parent process's thread (``task_executor.execute_single_task``
-> ``task_dispatcher.run_single_task_implementation`` -> ``SubprocessTaskHandler.run``). The task
subprocess's stdout+stderr come back through one pipe and are ``print``-ed line by line in the
parent; kfp's own messages ("Executing task", the executor-input JSON, the outputs) go through a
root-logger ``StreamHandler(sys.stdout)`` made at the start of each task; its warnings
(``warnings.warn``) go to ``sys.stderr``. All of it is therefore Python-level writes to
``sys.stdout`` / ``sys.stderr`` made *in the thread that runs the task* (the enhanced DAG
orchestrator may run independent tasks in a thread pool), so no file-descriptor redirection is
needed: :func:`quiet_run` swaps ``sys.stdout`` / ``sys.stderr`` for a :class:`_Router` that sends a
write to the log of the step its thread is running (a thread-local set by a wrapper around
``execute_single_task``), and anything else to ``logs/pipeline.log`` (stderr also to the terminal).

The step view reads the routed lines: tqdm bars (the steps' progress, ``\\r``-separated updates that
kfp's line reader splits into lines) become a progress bar in the step's row, and warning lines
are counted and shown at the end with the log path. A step whose ``execute_single_task`` returns
success without reaching ``run_single_task_implementation`` was served from kfp.local's cache.

Shows (terminal): a rich ``Live`` table, one row per step: state, wall time, progress. When stdout
is not a terminal (CI, ``| tee``), one line per state change instead.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

#: Step states, in the order a step goes through them.
STATES = ("queued", "running", "done", "cached", "failed", "skipped")
STYLE = {"queued": "dim", "running": "bold cyan", "done": "green", "cached": "blue", "failed": "bold red",
         "skipped": "dim"}
#: Lines of a failed step's log printed on the terminal.
TAIL_LINES = 20

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# tqdm's default bar: "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate}]"
# (tqdm.std.tqdm.format_meter); kfp's print indents each streamed line by 4 spaces.
_TQDM = re.compile(r"^\s*(?:(?P<desc>.*?):\s*)?(?P<pct>\d{1,3})%\|[^|]*\|\s*(?P<count>\S+/\S+)\s*\[")
# "path.py:12: SomeWarning: text" (warnings.showwarning) or a logging record at WARNING level.
_WARNING = re.compile(r"\b[A-Z]\w*Warning: |\bWARNING\b")


@dataclass(frozen=True)
class Progress:
    """One tqdm update of a step: ``desc``, ``fraction`` in [0, 1], ``count`` like ``"45/100"``."""

    desc: str
    fraction: float
    count: str


def parse_tqdm(line: str) -> Progress | None:
    """The progress in a tqdm status line (default format, with a known total), else ``None``."""
    m = _TQDM.match(_ANSI.sub("", line))
    if not m:
        return None
    return Progress((m["desc"] or "").strip(), min(int(m["pct"]), 100) / 100.0, m["count"])


def is_warning(line: str) -> bool:
    """A Python warning (``...: XWarning: ...``) or a WARNING-level log record."""
    return bool(_WARNING.search(line))


@dataclass
class StepState:
    """One row of the view.

    Attributes:
        name: the task's display name (``train-phase-1``); also the log file's stem.
        state: one of :data:`STATES`.
        started: ``time.monotonic()`` at start (s), or ``None``.
        wall_s: wall time (s) once finished and run (``None`` when cached / skipped).
        progress: the latest tqdm update seen in its output.
        log_path: ``logs/<name>.log``, set when the step starts.
        warnings: warning lines seen (the first :data:`MAX_WARNINGS` kept), ``n_warnings`` all.
        attempts: executions (kfp retries re-run a step in the same row).
        tail: the last :data:`TAIL_LINES` non-progress lines of its output.
    """

    name: str
    state: str = "queued"
    started: float | None = None
    wall_s: float | None = None
    progress: Progress | None = None
    log_path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    n_warnings: int = 0
    attempts: int = 0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))


#: Warning lines of a step kept (and printed at the end, one terminal line each).
MAX_WARNINGS = 2


class RunView:
    """The steps of one run and their state; a rich renderable (``__rich__``), thread-safe.

    Args:
        names: the pipeline's executor steps in run order (shown as ``queued``).
        log_dir: where ``<step>.log`` files go (created).
        on_change: called with a step after each state change (the line mode for non-terminals).
    """

    def __init__(self, names: list[str], log_dir: Path, on_change: Any = None) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.steps: dict[str, StepState] = {n: StepState(n) for n in names}
        self.on_change = on_change
        self._lock = threading.RLock()

    def start(self, name: str) -> StepState:
        """Mark ``name`` running (a new row ``name#k`` when that name already ran: ParallelFor)."""
        with self._lock:
            key, k = name, 1
            while key in self.steps and self.steps[key].state != "queued":
                k += 1
                key = f"{name}#{k}"
            st = self.steps.setdefault(key, StepState(key))
            st.state, st.started = "running", time.monotonic()
            st.log_path = self.log_dir / f"{_safe(key)}.log"
        self._changed(st)
        return st

    def finish(self, st: StepState, state: str) -> None:
        """Mark ``st`` done / cached / failed and record its wall time (s)."""
        with self._lock:
            st.state = state
            st.progress = None
            if state != "cached" and st.started is not None:
                st.wall_s = time.monotonic() - st.started
        self._changed(st)

    def close(self) -> None:
        """Steps never started (an untaken ``dsl.If`` branch, or after a failure) become ``skipped``."""
        with self._lock:
            for st in self.steps.values():
                if st.state == "queued":
                    st.state = "skipped"

    def feed(self, st: StepState, line: str) -> None:
        """Read one complete output line of ``st``: progress, warnings, tail."""
        p = parse_tqdm(line)
        with self._lock:
            if p is not None:
                st.progress = p
                return
            text = line.rstrip()
            text = text[4:] if text.startswith("    ") else text  # kfp's indent of streamed lines
            if not text.strip() or not text.strip("-"):  # blank, or kfp's horizontal rule
                return
            st.tail.append(text)
            if is_warning(text):
                st.n_warnings += 1
                if len(st.warnings) < MAX_WARNINGS:
                    st.warnings.append(text)

    @property
    def failed(self) -> list[StepState]:
        """Steps in state ``failed``."""
        return [s for s in self.steps.values() if s.state == "failed"]

    def _changed(self, st: StepState) -> None:
        if self.on_change is not None:
            self.on_change(st)

    def __rich__(self) -> Table:
        t = Table(box=None, pad_edge=False, show_header=False)
        t.add_column("step", no_wrap=True)
        t.add_column("state", no_wrap=True)
        t.add_column("wall", justify="right", no_wrap=True)
        t.add_column("progress", no_wrap=True)
        now = time.monotonic()
        with self._lock:
            for st in self.steps.values():
                wall = st.wall_s if st.wall_s is not None else (now - st.started if st.state == "running" and st.started else None)
                prog: Any = ""
                if st.state == "running" and st.progress is not None:
                    prog = _progress_cell(st.progress)
                elif st.n_warnings:
                    prog = Text(f"{st.n_warnings} warning(s)", style="yellow")
                t.add_row(st.name, Text(st.state, style=STYLE[st.state]), "" if wall is None else f"{wall:.1f} s", prog)
        return t


def _progress_cell(p: Progress) -> Table:
    g = Table.grid(padding=(0, 1))
    g.add_row(ProgressBar(total=1.0, completed=p.fraction, width=24), Text(f"{p.desc} {p.count}".strip(), style="dim"))
    return g


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._#-]", "_", name)


class _StepSink:
    """Writes of one step: appended to its log (line-buffered, so ``tail -f`` follows a running step;
    ANSI colour codes stripped), complete lines fed to the view."""

    def __init__(self, view: RunView, st: StepState) -> None:
        self.view, self.st = view, st
        assert st.log_path is not None
        self.file = open(st.log_path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed in close()
        self._buf = ""

    def write(self, s: str) -> None:
        s = _ANSI.sub("", s)
        self.file.write(s)
        self._buf += s.replace("\r", "\n")
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self.view.feed(self.st, line)

    def close(self) -> None:
        if self._buf:
            self.view.feed(self.st, self._buf)
            self._buf = ""
        self.file.close()


class _Router:
    """A ``sys.stdout`` / ``sys.stderr`` stand-in: a write goes to the step sink of the writing
    thread; other writes go to ``fallback`` and, when given, line by line to ``echo``."""

    def __init__(self, local: threading.local, original: TextIO, fallback: TextIO, echo: Any = None) -> None:
        self._local, self._original, self._fallback, self._echo = local, original, fallback, echo
        self._buf = ""
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        sink = getattr(self._local, "sink", None)
        if sink is not None:
            sink.write(s)
            return len(s)
        with self._lock:
            self._fallback.write(_ANSI.sub("", s))
            if self._echo is not None:
                self._buf += s
                *lines, self._buf = self._buf.split("\n")
                for line in lines:
                    self._echo(line)
        return len(s)

    def flush(self) -> None:
        self._fallback.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._original.fileno()

    def __getattr__(self, name: str) -> Any:  # encoding, errors, ...
        return getattr(self._original, name)


def step_names(pipeline_spec: Any) -> list[str]:
    """Display names of the executor (non-DAG) tasks of a compiled ``PipelineSpec``, in a
    topological order of the DAG (sub-DAGs such as ``dsl.If`` branches expanded in place)."""
    comps = pipeline_spec.components

    def walk(dag: Any) -> list[str]:
        tasks = dict(dag.tasks)
        order: list[str] = []
        done: set[str] = set()
        pending = list(tasks)
        while pending:
            ready = [t for t in pending if all(d in done or d not in tasks for d in tasks[t].dependent_tasks)]
            ready = ready or pending[:1]  # a cycle cannot compile; stay total anyway
            for t in ready:
                pending.remove(t)
                done.add(t)
                spec = tasks[t]
                comp = comps[spec.component_ref.name]
                if comp.WhichOneof("implementation") == "dag":
                    order.extend(walk(comp.dag))
                else:
                    order.append(spec.task_info.name or t)
        return order

    return walk(pipeline_spec.root.dag)


def _arg(args: tuple, kwargs: dict, name: str, index: int) -> Any:
    return kwargs[name] if name in kwargs else args[index]


@contextlib.contextmanager
def quiet_run(names: list[str], log_dir: Path, console: Console | None = None) -> Iterator[RunView]:
    """Run a kfp.local pipeline inside this block with a live step view and per-step logs.

    Args:
        names: the steps to show queued (:func:`step_names`).
        log_dir: ``<run dir>/logs``; gets ``<step>.log`` per step and ``pipeline.log`` (kfp's
            pipeline-level messages and any other output of this process during the block).
        console: the terminal (default: a console on the current ``sys.stdout``).

    Yields:
        The :class:`RunView`; on leaving, failed steps' log paths and last :data:`TAIL_LINES`
        lines, and the first warnings of each step with warnings, are printed.
    """
    from kfp.local import task_dispatcher
    from kfp.local.orchestrator import task_executor

    if console is None or console.file is sys.stdout:
        # A console made without ``file=`` follows ``sys.stdout``, which is swapped below: bind one
        # to the real stream instead.
        console = Console(file=sys.stdout)
    live_mode = console.is_terminal and not console.is_dumb_terminal

    def line_mode(st: StepState) -> None:
        wall = f" {st.wall_s:6.1f} s" if st.wall_s is not None and st.state != "running" else ""
        console.print(Text.assemble((f"{st.state:<8}", STYLE[st.state]), f" {st.name}{wall}"), highlight=False)

    view = RunView(names, log_dir, on_change=None if live_mode else line_mode)
    local = threading.local()
    orig_exec = task_executor.execute_single_task
    orig_run = task_dispatcher.run_single_task_implementation

    def execute_single_task(*args: Any, **kwargs: Any) -> Any:
        spec = _arg(args, kwargs, "task_spec", 1)
        st = view.start(spec.task_info.name or _arg(args, kwargs, "task_name", 0))
        sink = _StepSink(view, st)
        local.sink, local.ran = sink, False
        state = "failed"
        try:
            outputs, status = orig_exec(*args, **kwargs)
            if status.name == "SUCCESS":
                state = "done" if local.ran else "cached"
            return outputs, status
        finally:
            local.sink = None
            sink.close()
            view.finish(st, state)

    def run_single_task_implementation(*args: Any, **kwargs: Any) -> Any:
        local.ran = True
        local.sink.st.attempts += 1
        return orig_run(*args, **kwargs)

    pipeline_log = open(Path(log_dir) / "pipeline.log", "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - closed below
    out, err = sys.stdout, sys.stderr
    live = Live(view, console=console, refresh_per_second=4, redirect_stdout=False, redirect_stderr=False,
                auto_refresh=live_mode)

    def echo(line: str) -> None:
        console.print(Text(_ANSI.sub("", line)), highlight=False)

    task_executor.execute_single_task = execute_single_task
    task_dispatcher.run_single_task_implementation = run_single_task_implementation
    sys.stdout = _Router(local, out, pipeline_log)  # type: ignore[assignment]
    sys.stderr = _Router(local, err, pipeline_log, echo=echo)  # type: ignore[assignment]
    try:
        if live_mode:
            live.start()
        yield view
    finally:
        sys.stdout, sys.stderr = out, err
        task_executor.execute_single_task = orig_exec
        task_dispatcher.run_single_task_implementation = orig_run
        view.close()
        if live_mode:
            live.refresh()
            live.stop()
        pipeline_log.close()
        report(view, console)


def report(view: RunView, console: Console) -> None:
    """Print each failed step's log path and last lines, and the first warnings of other steps."""
    for st in view.failed:
        console.print(f"[bold red]step {st.name} failed[/] (attempts: {st.attempts}); full log: {st.log_path}",
                      highlight=False)
        for line in st.tail:
            console.print(Text("  " + line), highlight=False)
    for st in view.steps.values():
        if st.n_warnings and st.state != "failed":
            console.print(f"[yellow]{st.name}: {st.n_warnings} warning line(s)[/], see {st.log_path}", highlight=False)
            for w in st.warnings:
                console.print(Text("  " + w.strip(), no_wrap=True, overflow="ellipsis"), highlight=False)
