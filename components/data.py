"""Data components: source corpus, UniST synthesis, codec fit, tokenization, GE gate, DVC version.

Each body: artifacts -> paths, one library call (``uniss.unist`` / ``uniss.codecs`` / ``registry.data``), outputs.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from uniss.version import PROJECT_IMAGE as BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def build_source(size: str, seed: int, sources: dict, data_params: dict, source: Output[Dataset]) -> int:
    """Generate the demo source corpus (TTS voices, both directions) of a size preset, or read the
    user's corpora named by ``sources`` (``uniss.unist.ingest.IngestSpec`` as a dict; ``{}`` = demo).

    ``data_params`` (params.yaml ``data``: the size presets, voices, TTS engine, seed) is an input so
    that KFP's cache key covers it: read from params.yaml inside the step, an edited preset (say, a
    larger ``alignment_speech``) was served the corpus cached under the old one.

    Returns the number of source utterances.
    """
    from components.tracking import step_run
    from uniss.unist.steps import build_source as run

    with step_run("build_source", {"size": size, "seed": seed, "sources": sources}):
        summary = run(size=size, out_dir=source.path, seed=seed, params=data_params, sources=sources)
    source.metadata.update(summary)
    return int(summary["rows"])


@dsl.component(base_image=BASE_IMAGE)
def synthesize_unist(source: Input[Dataset], data_params: dict, unist: Output[Dataset]) -> int:
    """UniST synthesis (paper §4): re-ASR filter, translate, voice-mapped target TTS, speed tokens,
    General/HQ filters; dropped samples in ``quarantine.parquet``. Returns kept samples."""
    from components.tracking import log_dir_artifacts, step_run
    from uniss.unist.steps import synthesize as run

    with step_run("synthesize_unist", data_params):
        summary = run(source_dir=source.path, out_dir=unist.path, params=data_params)
        log_dir_artifacts(unist.path, "plots")
    unist.metadata.update(summary)
    return int(summary["rows"])


@dsl.component(base_image=BASE_IMAGE)
def fit_codec(unist: Input[Dataset], preset: str, codec: Output[Model]) -> str:
    """Fit the CPU "lite" triple tokenizer on the train split; returns its fingerprint."""
    from components.tracking import step_run
    from uniss.unist.steps import fit_codec as run

    with step_run("fit_codec", {"preset": preset}):
        fingerprint = run(data_dir=unist.path, out_dir=codec.path, preset=preset)
    codec.metadata["fingerprint"] = fingerprint
    return fingerprint


@dsl.component(base_image=BASE_IMAGE)
def tokenize_unist(unist: Input[Dataset], codec: Input[Model], tokenized: Output[Dataset]) -> int:
    """Add the speaker / linguistic / semantic token streams of source and target speech."""
    from components.tracking import step_run
    from uniss.unist.steps import tokenize as run

    with step_run("tokenize_unist"):
        summary = run(data_dir=unist.path, codec_dir=codec.path, out_dir=tokenized.path)
    tokenized.metadata.update(summary)
    return int(summary["rows"])


@dsl.component(base_image=BASE_IMAGE)
def validate_unist(data: Input[Dataset], validated: Output[Dataset], report: Output[Metrics]) -> bool:
    """Great Expectations gate; the validated copy is what training accepts. Fails the step when
    any expectation fails (the error lists expectations and row ids)."""
    from components.tracking import record_metrics, step_run
    from uniss.unist.steps import validate as run

    with step_run("validate_unist"):
        result = run(data_dir=data.path, out_dir=validated.path)
    record_metrics(report, result.get("statistics", {}))
    return bool(result["passed"])


@dsl.component(base_image=BASE_IMAGE)
def version_unist(data: Input[Dataset]) -> str:
    """Commit the dataset to the DVC data registry, push it to S3, return the version tag."""
    from components.tracking import set_parent_tags, step_run
    from registry.data import version as run

    with step_run("version_unist"):
        tag = run(data_dir=data.path)
    set_parent_tags({"data_version": tag})
    return tag


@dsl.component(base_image=BASE_IMAGE)
def check_data_version(data_version: str) -> str:
    """Fail early unless ``data_version`` is a tag of the DVC data registry; returns it."""
    from components.tracking import step_run
    from registry.data import require_version as run

    with step_run("check_data_version", {"data_version": data_version}):
        return run(data_version)


@dsl.component(base_image=BASE_IMAGE)
def checkout_unist(data_version: str, data: Output[Dataset]) -> str:
    """Restore a data version from the DVC registry byte-for-byte (pulling from S3 when the local
    cache lacks it): training and evaluation always consume a versioned data product."""
    from components.tracking import set_parent_tags, step_run
    from registry.data import checkout as run

    with step_run("checkout_unist", {"data_version": data_version}):
        run(version=data_version, out_dir=data.path)
    set_parent_tags({"data_version": data_version})
    return data_version
