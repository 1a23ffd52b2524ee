"""``uniss serve`` (KServe ModelServer or InferenceService manifest) and ``uniss translate``
(one file, no server).

Both accept ``models:/NAME@ALIAS``: the URI is resolved here (``registry.models.resolve_model_source``)
and the engine / predictor get the local bundle directory."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli._common import console, friendly_errors
from uniss.settings import MODEL_NAME

DEFAULT_MODEL = f"models:/{MODEL_NAME}@champion"


def serve(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Bundle dir, models:/NAME@ALIAS, or released UniSS checkpoint dir."),
    port: int = typer.Option(8080, "--port", help="HTTP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (0.0.0.0 only inside a container)."),
    emit_manifest: bool = typer.Option(False, "--emit-manifest", help="Print/write the KServe InferenceService YAML instead of serving."),
    manifest_out: Path | None = typer.Option(None, "--out", "-o", help="With --emit-manifest: write the YAML here."),
    canary_percent: int | None = typer.Option(None, "--canary-percent", min=0, max=100, help="With --emit-manifest: canaryTrafficPercent for a challenger rollout."),
    storage_uri: str = typer.Option(f"s3://mlflow/models/{MODEL_NAME}/champion", "--storage-uri", help="With --emit-manifest: bundle location in MinIO."),
    name: str = typer.Option(MODEL_NAME, "--name", help="With --emit-manifest: InferenceService name."),
    gpus: int = typer.Option(1, "--gpus", min=0, help="With --emit-manifest: nvidia.com/gpu limit."),
    max_audio_s: float | None = typer.Option(None, "--max-audio-s", help="Longest accepted clip, seconds (env UNISS_SERVE_MAX_AUDIO_S)."),
    max_batch: int | None = typer.Option(None, "--max-batch", help="Most utterances per request and per batch."),
    request_timeout_s: float | None = typer.Option(None, "--request-timeout-s", help="Answer 504 past this many seconds; 0 = none (env UNISS_SERVE_REQUEST_TIMEOUT_S)."),
    runtime: str | None = typer.Option(None, "--runtime", help="Decoding runtime: continuous (default, CPU/GPU), hf (transformers generate) or vllm (GPU, untested); with --emit-manifest: the InferenceService's runtime (env UNISS_SERVE_RUNTIME)."),
    allow_no_model: bool = typer.Option(False, "--allow-no-model", help="Start even when the model cannot be loaded yet (not ready until POST /v2/repository/models/NAME/load)."),
) -> None:
    """Serve a UniSS model with KServe (v1 + v2 REST) on HOST:PORT, or emit its InferenceService manifest.

    The model source is resolved again on ``POST /v2/repository/models/NAME/load`` (loopback
    clients only): serving ``models:/NAME@champion``, that call reloads the current champion with
    no downtime. SIGTERM finishes the requests in flight before exiting."""
    if runtime is not None and runtime not in ("continuous", "hf", "vllm"):
        raise typer.BadParameter(f"{runtime!r} is not one of continuous, hf, vllm", param_hint="--runtime")
    if emit_manifest:
        from serving.manifests import ManifestError, ServiceSpec, write_manifest

        if runtime == "hf":
            raise typer.BadParameter("an InferenceService runs runtime continuous or vllm", param_hint="--runtime")
        try:
            text = write_manifest(ServiceSpec(name=name, storage_uri=storage_uri, gpus=gpus, canary_traffic_percent=canary_percent,
                                              **({"runtime": runtime} if runtime else {})), manifest_out)
        except ManifestError as e:
            raise typer.BadParameter(str(e), param_hint="--runtime") from None
        if manifest_out is None:
            typer.echo(text, nl=False)
        else:
            console.print(f"wrote {manifest_out}")
        return
    from serving.predictor import ServeConfig
    from serving.server import serve_model

    overrides = {k: v for k, v in {"max_audio_s": max_audio_s, "max_batch": max_batch,
                                   "request_timeout_s": request_timeout_s, "runtime": runtime}.items() if v is not None}
    config = ServeConfig(**overrides)
    serve_model(model, resolve=resolve_served_model, allow_no_model=allow_no_model, host=host, port=port, config=config)


def resolve_served_model(source: str):
    """``source`` -> ``serving.server.ResolvedModel`` (bundle dir + registered version) for the
    model server; called at start and on every reload.

    ``models:/NAME@ALIAS`` is pinned to the version holding the alias *now*
    (``registry.models.model_uri_version``), then downloaded as ``models:/NAME/VERSION``
    (``registry.models.resolve_model_source``, cached per version), so the version reported is the
    one loaded even if the alias moves meanwhile. Any other source is a local directory (version ``""``).

    Raises:
        serving.server.NoModelYet: the alias (or the registered model) does not exist yet.
        registry.models.RegistryError: the version cannot be downloaded.
    """
    from registry.models import AliasNotSetError, model_uri_version, resolve_model_source
    from serving.server import NoModelYet, ResolvedModel

    if not source.startswith("models:/"):
        return ResolvedModel(Path(source), "")
    try:
        name, version = model_uri_version(source)
    except AliasNotSetError as e:
        raise NoModelYet(f"{e} yet (the pipeline's promote step sets it; `uniss promote VERSION`)") from None
    return ResolvedModel(resolve_model_source(f"models:/{name}/{version}"), version)


def translate(
    source: Path = typer.Argument(..., exists=True, dir_okay=False, help="Source audio file (any rate/channels)."),
    to: str = typer.Option(..., "--to", help="Target language: en or zh."),
    mode: str = typer.Option("quality", "--mode", help="quality | performance | direct."),
    out: Path = typer.Option(..., "--out", "-o", help="Output WAV (16 kHz)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Bundle dir, models:/NAME@ALIAS, or released checkpoint dir."),
    speed: float = typer.Option(1.0, "--speed", help="Target/source duration ratio (0.1-3.5)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for reproducible sampling."),
    greedy: bool = typer.Option(False, "--greedy", help="Greedy decoding instead of sampling."),
    max_audio_s: float = typer.Option(60.0, "--max-audio-s", help="Longest accepted source clip, seconds."),
) -> None:
    """Translate one audio file to OUT (WAV, 16 kHz) and print the texts and durations."""
    from registry.models import resolve_model_source
    from serving.engine import TranslationEngine
    from serving.predictor import wav_bytes

    wav = _read(source, max_audio_s)
    engine = TranslationEngine.load(resolve_model_source(model))
    r = engine.translate([wav], target_language=to, mode=mode, speed=speed, seed=seed, do_sample=not greedy,
                         require_speech=False)[0]  # checked by _read
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(wav_bytes(r.wav))
    if r.source_text is not None:
        console.print(f"source text: {r.source_text}", highlight=False, markup=False)
    if r.target_text is not None:
        console.print(f"target text: {r.target_text}", highlight=False, markup=False)
    console.print(f"source {r.source_duration_s:.2f} s -> target {r.duration_s:.2f} s, {r.output_tokens} tokens, "
                  f"{r.timings['total']:.2f} s; complete={r.complete}{'' if r.complete else ' (' + str(r.reason) + ')'}; wrote {out}",
                  highlight=False, markup=False)


def _read(path: Path, max_audio_s: float):
    """Audio file -> (N,) float32 16 kHz, checked for speech before the model is loaded.

    Raises:
        uniss.audio.AudioError: undecodable, too short/long, NaN/inf, or no speech
            (``NoSpeechAudioError``: silence, DC offset, constant, noise); ``friendly_errors`` prints
            it as one line and exits with code 2.
    """
    from uniss.audio import load_audio, require_speech

    wav = load_audio(path, min_duration_s=0.1, max_duration_s=max_audio_s)
    return require_speech(wav, what=str(path))


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``translate`` to the root app."""
    app.command("serve")(friendly_errors(serve))
    app.command("translate")(friendly_errors(translate))
