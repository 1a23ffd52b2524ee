"""The one S3 client factory of the platform: every S3 user (the embedded stack in ``infra/local``,
the DVC data registry in :mod:`registry.data`) builds its ``minio.Minio`` client here, from
:class:`uniss.settings.Settings` (endpoint, region, keys), and creates buckets the same way.

``uniss/`` never imports this module (the domain core has no S3 clients; ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import minio

from uniss.settings import Settings, get_settings

#: S3 error codes meaning "these keys are wrong" (AWS S3 API reference, "Error responses"; the
#: codes SeaweedFS and MinIO return for a bad signature, an unknown key id and a refused request).
AUTH_ERROR_CODES = ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied")


def minio_client(settings: Settings | None = None) -> minio.Minio:
    """A ``minio.Minio`` client for the configured S3 endpoint with the configured keys.

    Args:
        settings: configuration (default :func:`uniss.settings.get_settings`): ``s3_netloc``,
            ``s3_secure`` (HTTPS endpoint), ``s3_region`` and ``s3_credentials()``.

    Raises:
        uniss.settings.CredentialsError: no credentials (run ``uniss stack up``).
    """
    s = settings or get_settings()
    access, secret = s.s3_credentials()
    return minio.Minio(s.s3_netloc, access_key=access, secret_key=secret, secure=s.s3_secure, region=s.s3_region)


def ensure_buckets(buckets: Iterable[str], settings: Settings | None = None, *, client: minio.Minio | None = None) -> list[str]:
    """Create each bucket that does not exist yet (minio SDK ``bucket_exists`` / ``make_bucket``).

    One pass, no retry: callers that wait for a warming server retry around it.

    Args:
        buckets: bucket names.
        settings: configuration for :func:`minio_client` when ``client`` is not given.
        client: an existing client (reused across retries).

    Returns:
        the buckets created by this call (empty when all existed).

    Raises:
        minio.error.S3Error: the server refused a request (``e.code`` in :data:`AUTH_ERROR_CODES`
            for wrong keys); urllib3 / OS errors when the endpoint does not answer;
        uniss.settings.CredentialsError: no credentials (only when ``client`` is not given).
    """
    c = client or minio_client(settings)
    created = []
    for b in buckets:
        if not c.bucket_exists(b):
            c.make_bucket(b)
            created.append(b)
    return created
