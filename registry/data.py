"""DVC data registry: every UniST build becomes a git tag ``v<N>`` whose ``unist.dvc`` pins the exact
shard bytes; the shards live in the S3 object store (DVC remote ``s3://<data_bucket>/dvc``).

The registry is a git repository the platform manages under ``settings.home_dir / "data-registry"``
(git init + ``dvc init``, a local git identity). The remote's endpoint is written with
``dvc remote modify --local`` (``.dvc/config.local``, git-ignored: it is deployment-specific) and
the credentials never touch a file at all: they reach DVC as ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` in the environment of the ``dvc`` process, from
``settings.s3_credentials()``. Everything goes through DVC's and git's CLIs (DVC user guide:
"Data registry", ``dvc add/push/pull/checkout``); nothing copies objects to S3 by hand.

Rollback (``checkout``) = ``git checkout <tag>`` + ``dvc pull`` (fetch missing objects from S3 into
the cache, then check the workspace out): byte-for-byte, even after the local cache was deleted.

The S3 client (bucket creation) comes from :mod:`registry.storage`. The step functions
:func:`version`, :func:`checkout` and :func:`require_version` are what the KFP data components call;
``uniss.unist.steps.build`` takes a :class:`DataRegistry` from its caller (``uniss/`` never imports
``registry/``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from minio.error import S3Error

from registry.storage import ensure_buckets, minio_client
from uniss.settings import Settings, get_settings
from uniss.unist.errors import VersioningError
from uniss.unist.shards import read_manifest, verify_md5s

#: Folder (inside the registry) holding the tracked dataset.
DATASET = "unist"
REMOTE = "storage"
_TAG = re.compile(r"^v(\d+)$")


def _dvc_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("dvc")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dvc"]


class DataRegistry:
    """A git + DVC repository of UniST dataset versions.

    Args:
        root: registry folder (default ``settings.home_dir / "data-registry"``).
        settings: platform settings (S3 endpoint, bucket, credentials).
    """

    def __init__(self, root: str | Path | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.root = Path(root) if root is not None else self.settings.home_dir / "data-registry"

    # ---- plumbing -------------------------------------------------------------------------------
    def _env(self, with_credentials: bool) -> dict[str, str]:
        env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
        if with_credentials:
            try:
                key, secret = self.settings.s3_credentials()
            except RuntimeError as e:
                raise VersioningError(str(e)) from None
            env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
                       AWS_DEFAULT_REGION=self.settings.s3_region)
        return env

    def _run(self, args: list[str], *, dvc: bool = False, credentials: bool = False, check: bool = True) -> str:
        cmd = (_dvc_cmd() if dvc else ["git"]) + args
        p = subprocess.run(cmd, cwd=self.root, env=self._env(credentials), capture_output=True, text=True)
        if check and p.returncode != 0:
            msg = (p.stderr.strip() or p.stdout.strip()).splitlines()[-5:]
            raise VersioningError(f"`{' '.join(cmd[-len(args) - 1:])}` failed: {' | '.join(msg)}")
        return p.stdout.strip()

    @property
    def remote_url(self) -> str:
        """``s3://<data_bucket>/dvc``."""
        return f"s3://{self.settings.data_bucket}/dvc"

    def init(self) -> None:
        """Create the registry (idempotent): git repo, local identity, ``dvc init``, S3 remote."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / ".git").exists():
            self._run(["init", "-q", "-b", "main"])
            self._run(["config", "user.name", "uniss-data"])
            self._run(["config", "user.email", "uniss-data@localhost"])
        if not (self.root / ".dvc").exists():
            self._run(["init", "-q"], dvc=True)
            self._run(["config", "core.analytics", "false"], dvc=True)
            self._run(["remote", "add", "-d", REMOTE, self.remote_url], dvc=True)
            self._run(["add", ".dvc", ".dvcignore"])
            self._run(["commit", "-q", "-m", "data registry: dvc init, S3 remote"])
        # deployment-specific, never committed: .dvc/config.local (rewritten only when it changed)
        local = self.root / ".dvc" / "config.local"
        want = f"endpointurl = {self.settings.s3_url}"
        if not local.exists() or want not in local.read_text():
            self._run(["remote", "modify", "--local", REMOTE, "endpointurl", self.settings.s3_url], dvc=True)
            self._run(["remote", "modify", "--local", REMOTE, "region", self.settings.s3_region], dvc=True)

    def tags(self) -> list[str]:
        """Version tags ``v<N>`` in increasing N."""
        if not (self.root / ".git").exists():
            return []
        tags = [t for t in self._run(["tag", "--list", "v*"]).splitlines() if _TAG.match(t)]
        return sorted(tags, key=lambda t: int(_TAG.match(t).group(1)))

    # ---- public API ----------------------------------------------------------------------------
    def add(self, data_dir: str | Path) -> str:
        """Commit a dataset directory as a new version (``dvc add`` + git commit + tag ``v<N>``).

        A dataset whose content id (``manifest["version"]``: shard md5s + codec fingerprint) and
        gate result equal the latest version's gets no new tag: that version is returned (the
        manifest's timestamps/timings alone do not make a new version).

        Args:
            data_dir: a built UniST dataset (``manifest.json`` + shards), ideally validated.

        Returns:
            the version tag, e.g. ``"v3"``.

        Raises:
            VersioningError: git/dvc failed; DataIntegrityError: not a dataset / md5 mismatch.
        """
        data_dir = Path(data_dir).resolve()
        m = read_manifest(data_dir)
        bad = [p for p, ok in verify_md5s(data_dir).items() if not ok]
        if bad:
            raise VersioningError(f"{data_dir}: shards do not match the manifest md5s: {bad}")
        self.init()
        log = self.log()
        if log and log[-1].get("content_version") == m.get("version") and log[-1].get("validation_passed") == \
                (m.get("validation") or {}).get("passed"):
            return log[-1]["version"]  # same shards + codec as the latest version: no new version
        self._run(["checkout", "-q", "-f", "main"])
        self._run(["checkout", "-f"], dvc=True, check=False)  # workspace at main's version
        dst = self.root / DATASET
        if dst.resolve() != data_dir:
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(data_dir, dst)
        self._run(["add", "-q", DATASET], dvc=True)
        self._run(["add", f"{DATASET}.dvc", ".gitignore"])
        tags = self.tags()
        if self._run(["status", "--porcelain", "--", f"{DATASET}.dvc"]) == "" and tags:
            head = self._run(["rev-parse", "HEAD"])
            for t in reversed(tags):
                if self._run(["rev-list", "-n", "1", t]) == head:
                    return t
        n = int(_TAG.match(tags[-1]).group(1)) + 1 if tags else 1
        tag = f"v{n}"
        summary = {"version": tag, "content_version": m.get("version"), "counts": (m.get("counts") or {}).get("subsets", {}),
                   "codec_fingerprint": m.get("codec_fingerprint"), "validation_passed": (m.get("validation") or {}).get("passed"),
                   "shards": {s["path"]: s["md5"] for s in m["shards"]}}
        self._run(["commit", "-q", "--allow-empty", "-m", f"data {tag}\n\n{json.dumps(summary, indent=1, sort_keys=True)}"])
        self._run(["tag", "-a", tag, "-m", json.dumps(summary, sort_keys=True)])
        return tag

    def ensure_bucket(self) -> None:
        """Create the data bucket on the object store when missing (minio SDK).

        Raises:
            VersioningError: the object store is unreachable or refuses the credentials.
        """
        try:
            client = minio_client(self.settings)
        except RuntimeError as e:  # uniss.settings.CredentialsError: no keys yet
            raise VersioningError(str(e)) from None
        try:
            ensure_buckets([self.settings.data_bucket], client=client)
        except (S3Error, OSError, ValueError) as e:
            raise VersioningError(f"object store {self.settings.s3_url} unusable: {e}") from None
        except Exception as e:  # urllib3 MaxRetryError and friends
            raise VersioningError(f"object store {self.settings.s3_url} unreachable: {type(e).__name__}: {e}") from None

    def push(self, version: str | None = None) -> str:
        """``dvc push`` the objects of ``version`` (default: the workspace) to the S3 remote.

        Returns:
            dvc's summary line.
        """
        self.init()
        self.ensure_bucket()
        if version:
            self._require(version)
        out = self._run(["push", "-q", *(["--all-tags"] if version is None else [])], dvc=True, credentials=True)
        return out or "pushed"

    def log(self) -> list[dict[str, Any]]:
        """Every version: ``{"version", "date", "counts", "shards" ({path: md5}), "codec_fingerprint"}``."""
        out = []
        for t in self.tags():
            raw = self._run(["tag", "-l", "--format=%(creatordate:iso-strict)\t%(contents)", t])
            date, _, body = raw.partition("\t")
            try:
                info = json.loads(body.strip())
            except json.JSONDecodeError:
                info = {}
            out.append({"version": t, "date": date, **info})
        return out

    def _require(self, version: str) -> None:
        if version not in self.tags():
            raise VersioningError(f"unknown data version {version!r}; known: {self.tags() or 'none'}")

    def checkout(self, version: str, out_dir: str | Path | None = None) -> Path:
        """Restore ``version`` byte-for-byte (``git checkout`` + ``dvc pull`` from S3), verify every
        shard md5 against that version's manifest, and optionally copy it to ``out_dir``.

        Returns:
            the restored dataset directory (``out_dir`` or ``<registry>/unist``).

        Raises:
            VersioningError: unknown version, pull failed, or md5 mismatch after restore.
        """
        self.init()
        self._require(version)
        self._run(["checkout", "-q", "-f", version])
        self._run(["pull", "-q", "--force"], dvc=True, credentials=True)
        src = self.root / DATASET
        bad = [p for p, ok in verify_md5s(src).items() if not ok]
        if bad:
            raise VersioningError(f"restored {version} but shards differ from its manifest: {bad}")
        if out_dir is None:
            return src
        dst = Path(out_dir)
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
        return dst

    def cache_dir(self) -> Path:
        """The registry's local DVC cache folder."""
        return self.root / ".dvc" / "cache"


# ---- step functions (what the KFP data components call) -------------------------------------------


def version(data_dir: str | Path, *, push: bool = True, registry: DataRegistry | None = None) -> str:
    """Commit the dataset to the DVC data registry (tag ``v<N>``) and push it to S3.

    Args:
        data_dir: a built, validated UniST dataset.
        push: ``dvc push`` to the S3 remote after committing.
        registry: the registry (default :class:`DataRegistry` of the settings' workspace).

    Returns:
        the version tag.

    Raises:
        VersioningError: as :meth:`DataRegistry.add` / :meth:`DataRegistry.push`.
    """
    reg = registry or DataRegistry()
    tag = reg.add(data_dir)
    if push:
        reg.push()
    return tag


def checkout(version: str, out_dir: str | Path, *, registry: DataRegistry | None = None) -> str:
    """Restore a data version byte-for-byte into ``out_dir`` (pulling from S3 as needed).

    Returns:
        the restored directory path.

    Raises:
        VersioningError: as :meth:`DataRegistry.checkout`.
    """
    reg = registry or DataRegistry()
    return str(reg.checkout(version, out_dir))


def require_version(version: str, *, registry: DataRegistry | None = None) -> str:
    """Check that ``version`` is a tag of the DVC data registry (before any compute).

    Returns:
        ``version``.

    Raises:
        VersioningError: unknown tag (the message lists the known ones).
    """
    reg = registry or DataRegistry()
    tags = reg.tags()
    if version not in tags:
        raise VersioningError(f"unknown data version {version!r}; the registry has {tags or 'no versions'}")
    return version
