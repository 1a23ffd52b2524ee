"""Base of every typed error the platform raises for bad input or bad state.

The CLI (``pipelines/cli``) turns any :class:`UnissError` into a one-line message and exit code 2
(never a traceback); the KServe predictor turns the request-related ones into HTTP 400.
Each module defines its own subclasses (``AudioError``, ``VocabError``, ``CodecError`` ...).
"""


class UnissError(Exception):
    """A clear, user-facing error: bad input, missing file/model, failed gate, bad config."""
