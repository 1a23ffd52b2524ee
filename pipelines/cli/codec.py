"""``uniss codec fit|encode|decode|roundtrip|info``: fit and use the triple speech tokenizer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer

from pipelines.cli._common import console, err_console, friendly_errors
from uniss.audio import SAMPLE_RATE_HZ
from uniss.codecs.base import CodecError, CodecTokens, load_codec

app = typer.Typer(name="codec", help="Fit, inspect and use the speech tokenizer (speaker / linguistic / semantic).",
                  no_args_is_help=True)

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3")


def _load_audio(path: Path) -> np.ndarray:
    """Mono 16 kHz float32 of an audio file (``uniss.audio.load_audio``: soundfile + soxr).

    Raises:
        AudioError: missing, empty, corrupt, too short or too long file.
    """
    from uniss.audio import load_audio

    return load_audio(path)


def _write_audio(path: Path, wav: np.ndarray) -> None:
    from uniss.audio import write_audio

    write_audio(path, wav)


def _audio_paths(audio_dir: Path | None, manifest: Path | None) -> list[Path]:
    """Audio files of a directory (recursive) or of a manifest (one path per line, or JSONL with
    an ``audio``/``path`` key; relative paths are relative to the manifest).

    Raises:
        CodecError: neither or both given, nothing found, malformed manifest line.
    """
    if (audio_dir is None) == (manifest is None):
        raise CodecError("give exactly one of --audio-dir or --manifest")
    if audio_dir is not None:
        if not audio_dir.is_dir():
            raise CodecError(f"audio directory not found: {audio_dir}")
        paths = sorted(p for p in audio_dir.rglob("*") if p.suffix.lower() in AUDIO_EXTS)
        if not paths:
            raise CodecError(f"no audio files ({', '.join(AUDIO_EXTS)}) under {audio_dir}")
        return paths
    assert manifest is not None
    if not manifest.is_file():
        raise CodecError(f"manifest not found: {manifest}")
    paths = []
    for n, line in enumerate(manifest.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                d = json.loads(line)
                p = d.get("audio") or d["path"]
            except (json.JSONDecodeError, KeyError, AttributeError):
                raise CodecError(f"{manifest}:{n}: JSON line needs an 'audio' or 'path' key") from None
        else:
            p = line
        q = Path(p)
        paths.append(q if q.is_absolute() else manifest.parent / q)
    if not paths:
        raise CodecError(f"manifest lists no audio: {manifest}")
    return paths


@app.command()
@friendly_errors
def fit(
    out: Path = typer.Option(..., "--out", help="codec directory to write"),
    audio_dir: Path = typer.Option(None, "--audio-dir", help="fit on every audio file under this directory"),
    manifest: Path = typer.Option(None, "--manifest", help="text/JSONL file listing audio paths"),
    preset: str = typer.Option(
        "demo",
        help="tiny (CI, < 60 s) | demo (~1000 clips, < 5 min) | tiny-v3 | demo-v3 (v3: Whisper units + MB-MelGAN) | "
             "demo-v3-hifigan (v3 rendered by HiFi-GAN, the pipeline's demo codec)",
    ),
    limit: int = typer.Option(0, help="use at most this many clips (0 = all)"),
) -> None:
    """Fit a lite codec (codebooks + decoder; v2 or v3 by preset) on a corpus of clips and save it."""
    from rich.progress import track

    from uniss.codecs.lite import LiteCodecConfig, fit_lite_codec

    cfg = LiteCodecConfig.preset(preset)
    paths = _audio_paths(audio_dir, manifest)
    if limit > 0:
        paths = paths[:limit]
    wavs = [_load_audio(p) for p in track(paths, description="loading audio", console=err_console)]
    t0 = time.perf_counter()
    codec = fit_lite_codec(wavs, cfg, progress=True)
    codec.save(out)
    console.print(
        f"fitted lite codec on {len(wavs)} clips ({codec.metrics['audio_s']:.0f} s) in {time.perf_counter() - t0:.0f} s: "
        f"sizes {codec.sizes}, decoder val L1 {codec.metrics['decoder_val_l1']:.3f}"
        + (f" (centroids {codec.metrics['centroid_val_l1']:.3f})" if "centroid_val_l1" in codec.metrics else "")
        + f" -> {out}  fingerprint {codec.fingerprint()[:16]}"
    )


@app.command()
@friendly_errors
def encode(
    audio: Path = typer.Argument(..., help="input audio file"),
    codec_dir: Path = typer.Option(..., "--codec", help="codec directory"),
    as_json: bool = typer.Option(False, "--json", help="print the tokens as JSON"),
    output: Path = typer.Option(None, "-o", "--output", help="write the tokens JSON here"),
) -> None:
    """Tokenize one clip into speaker (32), linguistic (12.5/s) and semantic (50/s) codes."""
    codec = load_codec(codec_dir)
    wav = _load_audio(audio)
    tok = codec.encode([wav])[0]
    d = {"codec_fingerprint": codec.fingerprint(), "duration_s": len(wav) / SAMPLE_RATE_HZ, **tok.to_dict()}
    if output is not None:
        output.write_text(json.dumps(d) + "\n")
    if as_json:
        print(json.dumps(d))
    else:
        console.print(
            f"{audio}: {d['duration_s']:.2f} s -> speaker {len(tok.speaker)}, linguistic {len(tok.linguistic)}, "
            f"semantic {len(tok.semantic)} tokens" + (f" -> {output}" if output else "")
        )


@app.command()
@friendly_errors
def decode(
    tokens: Path = typer.Argument(..., help="tokens JSON (from `uniss codec encode -o`)"),
    codec_dir: Path = typer.Option(..., "--codec", help="codec directory"),
    output: Path = typer.Option(..., "-o", "--output", help="output WAV (16 kHz)"),
) -> None:
    """Decode speaker + semantic codes back to 16 kHz speech."""
    codec = load_codec(codec_dir)
    if not tokens.is_file():
        raise CodecError(f"tokens file not found: {tokens}")
    try:
        d = json.loads(tokens.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CodecError(f"malformed tokens JSON {tokens}: {e}") from None
    if not isinstance(d, dict):
        raise CodecError(f"tokens JSON must be an object with 'speaker' and 'semantic': {tokens}")
    fp = d.get("codec_fingerprint")
    if fp and fp != codec.fingerprint():
        err_console.print(f"[yellow]warning:[/] tokens were made by codec {fp[:16]}, decoding with {codec.fingerprint()[:16]}")
    tok = CodecTokens.from_dict({"linguistic": [], **d})
    wav = codec.decode(tok.speaker, tok.semantic)
    _write_audio(output, wav)
    console.print(f"decoded {len(tok.semantic)} semantic tokens -> {len(wav) / SAMPLE_RATE_HZ:.2f} s -> {output}")


@app.command()
@friendly_errors
def roundtrip(
    audio: Path = typer.Argument(..., help="input audio file"),
    codec_dir: Path = typer.Option(..., "--codec", help="codec directory"),
    output: Path = typer.Option(..., "-o", "--output", help="output WAV (16 kHz)"),
    metrics: bool = typer.Option(False, "--metrics", help="print Whisper WER (vs --text, else vs the ASR of the input) and speaker similarity"),
    text: str = typer.Option(None, help="reference transcript for the WER"),
) -> None:
    """Encode then decode a clip; optionally measure intelligibility and voice similarity."""
    codec = load_codec(codec_dir)
    wav = _load_audio(audio)
    tok = codec.encode([wav])[0]
    out = codec.decode(tok.speaker, tok.semantic)
    _write_audio(output, out)
    line = f"{len(wav) / SAMPLE_RATE_HZ:.2f} s -> {len(out) / SAMPLE_RATE_HZ:.2f} s (ratio {len(out) / len(wav):.3f}) -> {output}"
    if metrics:
        from uniss.engines.asr import WhisperASR, error_rate
        from uniss.engines.speaker import SpeakerEncoder

        asr = WhisperASR(beam_size=1)
        ref = text if text else asr.transcribe([wav], "en")[0]
        hyp = asr.transcribe([out], "en")[0]
        wer = error_rate(ref, hyp, "en")
        sim = SpeakerEncoder().similarity(wav, out)
        line += f"\nWER {wer:.3f} (ref: {ref!r}; decoded: {hyp!r})\nspeaker similarity {sim:.3f}"
    console.print(line)


@app.command()
@friendly_errors
def info(codec_dir: Path = typer.Argument(..., help="codec directory")) -> None:
    """Print a codec's manifest (backend, sizes, rates, fit metrics) and fingerprint."""
    from uniss.codecs.base import read_manifest

    m = read_manifest(codec_dir)
    d = json.loads(m.to_json())
    d["fingerprint"] = m.fingerprint()
    print(json.dumps(d, indent=2))


def register(root: typer.Typer) -> None:
    """Add the ``codec`` group to the root ``uniss`` app."""
    root.add_typer(app, name="codec")
