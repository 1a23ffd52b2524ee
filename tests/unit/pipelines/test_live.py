"""The quiet terminal of local pipeline runs: tqdm parsing, the step view, log routing, and a real
kfp.local run whose executor output lands in per-step logs (a failing step prints its log path)."""

import io
import sys
import threading

import pytest
from kfp import dsl, local
from rich.console import Console

from pipelines.live import RunView, _Router, _StepSink, is_warning, parse_tqdm, quiet_run, step_names


def test_parse_tqdm_default_format_with_kfp_indent():
    p = parse_tqdm("    phase 1:  45%|████▌     | 45/100 [00:10<00:12,  4.50step/s]")
    assert p is not None
    assert (p.desc, p.fraction, p.count) == ("phase 1", 0.45, "45/100")
    p = parse_tqdm("unist tgt_asr:   0%|          | 0/2 [00:00<?, ?chunk/s][KFP Executor 2026 INFO]: x")
    assert p is not None and p.fraction == 0.0 and p.count == "0/2"
    assert parse_tqdm(" 100%|██████████| 3/3 [00:01<00:00]").desc == ""


def test_parse_tqdm_rejects_other_lines():
    assert parse_tqdm("[KFP Executor 2026-12-02 08:26:02,083 INFO]: Got executor_input:") is None
    assert parse_tqdm("loss 45% lower than before") is None
    assert parse_tqdm("samples: 12it [00:01, 9.9it/s]") is None  # no total: no bar


def test_is_warning():
    assert is_warning("/x/y.py:81: RuntimeWarning: something odd")
    assert is_warning("2026/12/02 08:25:59 WARNING mlflow.utils: message")
    assert not is_warning("  warnings.warn(")
    assert not is_warning("INFO all good")


def test_view_states_tail_and_render(tmp_path):
    view = RunView(["a", "b", "c"], tmp_path / "logs")
    a = view.start("a")
    assert a.state == "running" and a.log_path == tmp_path / "logs" / "a.log"
    view.feed(a, "epoch:  50%|█████     | 1/2 [00:01<00:01, 1.0it/s]")
    assert a.progress is not None and a.progress.count == "1/2"
    out = io.StringIO()
    Console(file=out, width=120).print(view)
    assert "running" in out.getvalue() and "1/2" in out.getvalue() and "queued" in out.getvalue()

    view.feed(a, "x.py:1: UserWarning: careful")
    for i in range(30):
        view.feed(a, f"line {i}")
    view.finish(a, "done")
    assert a.wall_s is not None and a.progress is None
    assert a.n_warnings == 1 and list(a.tail)[-1] == "line 29" and len(a.tail) == 20
    view.finish(view.start("b"), "cached")
    assert view.steps["b"].wall_s is None
    view.close()
    assert [s.state for s in view.steps.values()] == ["done", "cached", "skipped"]
    again = view.start("a")  # a second execution of the same name (ParallelFor) gets its own row
    assert again.name == "a#2"


def test_router_sends_each_thread_to_its_step(tmp_path):
    view = RunView(["s"], tmp_path)
    st = view.start("s")
    local = threading.local()
    fallback, echoed = io.StringIO(), []
    router = _Router(local, sys.__stdout__, fallback, echo=echoed.append)

    def task():
        local.sink = sink = _StepSink(view, st)
        router.write("\x1b[96mstep\x1b[0m line\nhalf")
        router.write(" line\n")
        sink.close()

    t = threading.Thread(target=task)
    t.start()
    t.join()
    router.write("outside\n")
    assert st.log_path.read_text() == "step line\nhalf line\n"
    assert list(st.tail) == ["step line", "half line"]
    assert fallback.getvalue() == "outside\n" and echoed == ["outside"]


@dsl.component(base_image="python:3.11")
def _chatty(n: int) -> int:
    import sys

    print("hello from the step")
    for i in range(n + 1):
        sys.stderr.write(f"\rwork: {100 * i // n:3d}%|##| {i}/{n} [00:00<00:00]")
    sys.stderr.write("\n")
    return n


@dsl.component(base_image="python:3.11")
def _broken(x: int) -> int:
    print("about to fail")
    raise ValueError("this step is broken")


@dsl.pipeline(name="quiet-ok")
def _ok_pipeline() -> int:
    return _chatty(n=3).output


@dsl.pipeline(name="quiet-fail")
def _fail_pipeline() -> int:
    a = _chatty(n=2)
    return _broken(x=a.output).output


@pytest.fixture
def kfp_local(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), enable_caching=True)


def test_quiet_run_routes_executor_output_and_reports_cache(tmp_path, kfp_local, capsys):
    out = io.StringIO()
    names = step_names(_ok_pipeline.pipeline_spec)
    assert names == ["chatty"]
    with quiet_run(names, tmp_path / "logs", Console(file=out, width=120)) as view:
        assert _ok_pipeline().output == 3
    st = view.steps["chatty"]
    assert st.state == "done" and st.attempts == 1
    log = st.log_path.read_text()
    assert "hello from the step" in log and "Got executor_input" in log and "3/3" in log
    assert "KFP Executor" not in out.getvalue() and "hello" not in out.getvalue()
    assert "done" in out.getvalue()  # line mode: the console is not a terminal
    assert "KFP Executor" not in capsys.readouterr().out
    assert (tmp_path / "logs" / "pipeline.log").exists()

    with quiet_run(names, tmp_path / "logs2", Console(file=io.StringIO())) as view:
        _ok_pipeline()
    assert view.steps["chatty"].state == "cached"


def test_failed_step_prints_its_log_path_and_tail(tmp_path, kfp_local):
    out = io.StringIO()
    with pytest.raises(RuntimeError), quiet_run(step_names(_fail_pipeline.pipeline_spec), tmp_path / "logs",
                                                Console(file=out, width=200)) as view:
        _fail_pipeline()
    assert [s.name for s in view.failed] == ["broken"]
    text = out.getvalue()
    log = tmp_path / "logs" / "broken.log"
    assert f"full log: {log}" in text
    assert "ValueError: this step is broken" in text and "ValueError: this step is broken" in log.read_text()


def test_step_names_of_retrain_follow_the_dag():
    from pipelines.retrain import make_retrain_pipeline

    names = step_names(make_retrain_pipeline("local").pipeline_spec)
    assert names.index("build-source") < names.index("synthesize-unist") < names.index("version-unist")
    assert names.index("checkout-unist") < names.index("train-phase-1") < names.index("train-phase-2")
    assert names.index("train-phase-3") < names.index("evaluate-model") < names.index("register-model")
    assert {"check-data-version", "promote-model", "deploy-model", "record-rejection"} <= set(names)


def test_a_console_following_stdout_keeps_printing_to_the_terminal(tmp_path, kfp_local, monkeypatch):
    term = io.StringIO()
    monkeypatch.setattr(sys, "stdout", term)
    with quiet_run(["chatty"], tmp_path / "logs", Console()) as view:  # Console() follows sys.stdout
        _ok_pipeline()
    assert view.steps["chatty"].state in ("done", "cached")
    assert "chatty" in term.getvalue() and "KFP Executor" not in term.getvalue()
    assert "KFP Executor" in view.steps["chatty"].log_path.read_text()
