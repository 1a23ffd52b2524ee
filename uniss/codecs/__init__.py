"""The triple speech tokenizer (speaker / linguistic / semantic, paper §3.1.2) behind one protocol.

Backends: ``lite`` (:mod:`uniss.codecs.lite`, fitted on the corpus on CPU) and ``paper``
(:mod:`uniss.codecs.paper`, BiCodec + GLM-4-Voice tokenizer from local checkpoints).
"""

from uniss.codecs.base import CodecError, CodecTokens, SpeechCodec, load_codec

__all__ = ["CodecError", "CodecTokens", "SpeechCodec", "load_codec"]
