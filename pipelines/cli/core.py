"""``uniss vocab`` and ``uniss prompt``: inspect the token layout and print task prompts."""

from __future__ import annotations

import json

import typer

from pipelines.cli._common import console, friendly_errors, parse_int_list
from uniss.prompts import Task, build_prompt
from uniss.vocab import SpeechVocab


def _vocab(layout: str) -> SpeechVocab:
    if layout == "paper":
        return SpeechVocab.paper()
    if layout == "lite":
        # Default lite sizes (the codecs and text BPE fitted by the demo pipeline); a trained
        # model bundle carries its own exact layout in vocab.json.
        return SpeechVocab.lite(4096, 1024, 4096, 1024, pad_id=0, im_start_id=1, eos_id=2)
    raise typer.BadParameter(f"layout must be 'paper' or 'lite', got {layout!r}")


def vocab(
    layout: str = typer.Option("paper", help="paper (released UniSS ids) or lite (CPU codecs)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Print the id ranges of each token family and the total."""
    v = _vocab(layout)
    if as_json:
        print(json.dumps(v.to_dict(), indent=2))
        return
    from rich.table import Table

    t = Table(title=f"{layout} token layout (total {v.total:,})")
    for c in ("family", "first id", "last id", "size"):
        t.add_column(c)
    for fam, (a, b) in v.ranges.items():
        t.add_row(fam, str(a), str(b - 1), f"{b - a:,}")
    console.print(t)


@friendly_errors
def prompt(
    task: Task = typer.Option(..., help="quality | performance | direct | asr | s2tt | tts | mt"),
    tgt: str = typer.Option(None, help="target language (en, zh)"),
    src: str = typer.Option(None, help="source language (ASR, TTS)"),
    speaker: str = typer.Option(None, help="32 comma-separated speaker codes"),
    linguistic: str = typer.Option("", help="comma-separated linguistic codes"),
    text: str = typer.Option(None, help="text (TTS, MT)"),
    speed: float = typer.Option(1.0, help="duration ratio for the speed token"),
    layout: str = typer.Option("paper", help="paper | lite"),
) -> None:
    """Print the inference prompt of a task, byte-identical to the released UniSS prompts."""
    v = _vocab(layout)
    p = build_prompt(
        v,
        task,
        tgt=tgt,
        src=src,
        speaker=parse_int_list(speaker, "--speaker") if speaker is not None else None,
        linguistic=parse_int_list(linguistic, "--linguistic"),
        text=text,
        speed_ratio=speed,
    )
    print(p)


def register(app: typer.Typer) -> None:
    """Add ``vocab`` and ``prompt`` to the root app."""
    app.command("vocab")(friendly_errors(vocab))
    app.command("prompt")(prompt)
