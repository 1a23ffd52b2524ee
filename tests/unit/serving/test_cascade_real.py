"""The cascade with the real small engines (Whisper-base, Qwen2.5-Coder-0.5B-Instruct, Kokoro) on 2
Kokoro clips, one per direction. Skipped with the install command when a model is absent."""

from __future__ import annotations

import pytest

from uniss.engines.llm_mt import QWEN_INSTALL_COMMAND, default_qwen_dir
from uniss.settings import get_settings

_MODELS = get_settings().models_dir.expanduser().resolve()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (default_qwen_dir() / "config.json").is_file(),
                       reason=f"Qwen2.5-Coder-0.5B-Instruct not installed ({QWEN_INSTALL_COMMAND})"),
    pytest.mark.skipif(not (_MODELS / "kokoro-82m").is_dir() or not (_MODELS / "whisper-base").is_dir(),
                       reason="Kokoro / Whisper-base not installed (make setup)"),
]


def test_real_cascade_two_clips():
    from serving.cascade import CascadeEngine
    from uniss.engines.asr import WhisperASR
    from uniss.engines.kokoro import KokoroTTS
    from uniss.engines.llm_mt import LocalChatMT
    from uniss.engines.speaker import SpeakerEncoder

    tts = KokoroTTS(threads=1)
    spk = SpeakerEncoder()
    eng = CascadeEngine(WhisperASR(), LocalChatMT(threads=1, max_new_tokens=64), tts)
    src_voice = "kokoro:jm_kumo"
    zh = tts.synthesize("我喜欢喝茶。", "zh", src_voice)
    en = tts.synthesize("He opened the window and looked at the garden.", "en", src_voice)
    r_en, = eng.translate([zh], target_language="en", voices=[src_voice])
    r_zh, = eng.translate([en], target_language="zh", voices=[src_voice])
    assert r_en.complete and "tea" in r_en.target_text.lower(), r_en
    assert r_zh.complete and "窗" in r_zh.target_text, r_zh
    assert r_en.voice == r_zh.voice == src_voice
    assert r_en.duration_s > 0.5 and r_zh.duration_s > 0.5
    from uniss.metrics import cosine

    assert cosine(spk.embed(en), spk.embed(r_en.wav)) > 0.7  # the source's voice kept across languages
