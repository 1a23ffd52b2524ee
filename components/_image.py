"""The container image every component runs in on a cluster; its tag derives from the package
version (STYLE.md #2, GCPC ``_image.py``). Local runs (``kfp.local`` SubprocessRunner) ignore it."""

from uniss import __version__

#: Registry/repository of the project image (built from the repo's Dockerfile by the release job).
IMAGE_REPOSITORY = "ghcr.io/uniss-platform/uniss"

#: ``ghcr.io/uniss-platform/uniss:<package version>``.
BASE_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
