"""The package version and the one container image derived from it (STYLE.md #2/#18, GCPC ``_image.py``).

Every step of a pipeline on a cluster (``components/``) and the KServe predictor
(``serving.manifests``) run in the same project image, tagged with the package version. It is
derived here, once, because ``components/`` and ``serving/`` may both import ``uniss`` but not
each other (docs/architecture.md "Arrows"). Local runs (``kfp.local`` SubprocessRunner) ignore it.
"""

from __future__ import annotations

from uniss import __version__

__all__ = ["IMAGE_REPOSITORY", "PROJECT_IMAGE", "__version__", "image_for"]

#: Registry/repository of the project image (built from the repo's Dockerfile by the release job).
IMAGE_REPOSITORY = "ghcr.io/uniss-platform/uniss"


def image_for(version: str = __version__) -> str:
    """``<IMAGE_REPOSITORY>:<version>``: the project image of a package version (default: this one)."""
    return f"{IMAGE_REPOSITORY}:{version}"


#: ``ghcr.io/uniss-platform/uniss:<package version>``: the image of every component and of the predictor.
PROJECT_IMAGE = image_for()
