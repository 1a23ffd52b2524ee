"""Read a JSON file that must hold one JSON object, or raise one typed error that says why.

Every "read this JSON record or fail clearly" in the platform (codec manifests, bundle metadata,
UniST manifests, credentials, training work-directory records) goes through :func:`read_json`, so
the four ways such a read can fail are named the same way everywhere:

- the file is missing;
- it cannot be read (permissions, a directory in its place, bytes that are not UTF-8);
- it is not JSON;
- its top-level value is not a JSON object.

A caller whose own callers catch a module-specific error (``CodecError``, ``BundleError`` ...)
passes that class as ``error=``; it must subclass :class:`~uniss.errors.UnissError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from uniss.errors import UnissError

__all__ = ["JsonFileError", "read_json"]


class JsonFileError(UnissError, ValueError):
    """A JSON record is missing, unreadable, not JSON, or not a JSON object."""


def read_json(
    path: str | Path, *, what: str = "JSON file", error: type[UnissError] = JsonFileError,
) -> dict[str, Any]:
    """The JSON object stored in ``path``.

    Args:
        path: the file (UTF-8 JSON).
        what: what the file is, for the message ("codec manifest", "bundle metadata" ...).
        error: the :class:`UnissError` subclass to raise (default :class:`JsonFileError`).

    Returns:
        the parsed top-level object (a ``dict``).

    Raises:
        error: with a message naming ``what``, the path and the problem: ``not found``,
            ``unreadable (...)``, ``not valid JSON (...)`` or ``expected a JSON object, got <type>``.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {p} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{what} {p} is unreadable ({e})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{what} {p} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise error(f"{what} {p}: expected a JSON object, got {type(obj).__name__}")
    return obj
