"""S2ST-Omni on the UniSS platform (issue 20; Pan et al. 2025, "S2ST-Omni: An Efficient Multilingual
Speech-to-Speech Translation Framework via Seamless Speech-Text Alignment and Progressive
Fine-tuning", arXiv 2506.11160): a frozen Whisper encoder, a lightweight speech adapter (LSA) into
the LM, the LM writing the translation (S2TT), then TTS of that text.

What this module owns (training/omni.py and serving/omni.py build on it): the prompt and
continuation of the S2TT sample, the adapter module, how adapter outputs replace the placeholder
embeddings, the frozen encoder features, and the adapter's place in a bundle.

Mapping onto this platform (ARCHITECTURE.md "Token layout"; paper §2):

======================================  ===============================================================
paper                                   here
======================================  ===============================================================
Whisper-large-v3 encoder, frozen        the Whisper-base encoder the lite codec already ships
(§2.2)                                  (CTranslate2, ``uniss.codecs.lite.features.whisper_states``),
                                        frozen; states (512-d, 50 Hz) average-pooled by 4 to 12.5 Hz
                                        in the ``"clip"`` window (each clip encoded alone)
LSA: 4 linear layers, LeakyReLU 0.1     :class:`SpeechAdapter`: the same 4-layer MLP with LeakyReLU
(§2.2 eq. 1-3)                          (slope 0.1), after stacking ``frame_stack`` (default 2)
                                        consecutive 12.5 Hz states (6.25 adapter frames/s)
Qwen3-4B with a system prompt (§3.1.2)  the bundle's Qwen2-architecture LM (tiny: random init +
                                        corpus BPE; clusters: Qwen2.5 via ``pretrained``); the
                                        S2TT prompt below instead of a chat system prompt
speech span in the LLM input            ``<|audio_placeholder_1|>`` x P (a control token UniSS
                                        leaves unused, id unchanged); its embeddings are replaced by
                                        the adapter outputs (:func:`splice_adapter`)
stage 1: only the LSA is updated;       ``tiny_omni_stage1.yaml`` (``omni.train_lm: false``) /
stage 2: LSA + LoRA(q_proj, v_proj)     ``tiny_omni_stage2.yaml`` (``omni.train_lm: true``): see
(§2.3)                                  training/omni.py for the deviation (full fine-tuning)
CosyVoice2 streaming TTS (§2.4)         the platform's TTS engine (Kokoro) in the voice nearest to
                                        the source speaker (serving/omni.py)
======================================  ===============================================================

Format (``{tgt}`` = the target language token; the UniSS S2TT prompt of ``uniss.prompts`` with
its speech span ``G L`` replaced by the adapter span)::

    prompt        <|task_s2t_translation|>{tgt}<|audio_placeholder_1|> x P<|write_generate|>{tgt}<|start_content|>
    continuation  {translation}<|end_content|><|im_end|>

with ``P = ceil(T_f / frame_stack)`` for ``T_f`` encoder states at 12.5 Hz. Loss only on the
continuation. No speaker block: the paper's SLM sees only the Whisper features, and the voice is
chosen for the TTS step from the waveform.

Shape legend:
    T_f   frozen encoder states of a clip at 12.5 Hz (``round(12.5 * N / 16000)``)
    D_f   encoder width = 512 (Whisper-base ``d_model``)
    k     ``frame_stack``
    P     adapter frames = placeholder tokens = ``ceil(T_f / k)``
    H     LM hidden size
    B, L  batch rows and sequence length (tokens)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from uniss.codecs.base import LINGUISTIC_RATE_HZ
from uniss.errors import UnissError
from uniss.prompts import IM_END, PromptError, language_token
from uniss.vocab import SpeechVocab

__all__ = [
    "ADAPTER_DIR",
    "AdapterConfig",
    "FEATURE_DIM",
    "FEATURE_RATE_HZ",
    "LEAKY_SLOPE",
    "OMNI_FORMAT",
    "OMNI_FORMATS",
    "OmniError",
    "PLACEHOLDER_TOKEN",
    "SpeechAdapter",
    "TASK_TOKEN",
    "adapter_inputs",
    "build_omni_continuation",
    "build_omni_prompt",
    "load_adapter",
    "n_adapter_frames",
    "save_adapter",
    "speech_features",
    "splice_adapter",
    "stack_frames",
]

#: The sample format name (training configs' ``data.formats``).
OMNI_FORMAT = "omni_s2tt"
#: The recipe's formats (one: S2TT; the TTS step is not trained, paper §2.4 uses a pre-trained TTS).
OMNI_FORMATS: tuple[str, ...] = (OMNI_FORMAT,)
#: Placeholder token of one adapter frame (ARCHITECTURE.md control token ``audio_placeholder_1``,
#: unused by UniSS's tasks; its id is unchanged, only its input embedding is replaced).
PLACEHOLDER_TOKEN = "<|audio_placeholder_1|>"
#: Task token: the UniSS S2TT one (``uniss.prompts``); the recipe's model is a separate model.
TASK_TOKEN = "<|task_s2t_translation|>"
#: Width of the frozen encoder states (Whisper-base ``d_model``; ``uniss.codecs.lite.features``).
FEATURE_DIM = 512
#: Rate of the stored encoder states (Hz): 50 Hz states average-pooled by 4, the lite codec's
#: linguistic rate (``uniss.codecs.base``).
FEATURE_RATE_HZ = LINGUISTIC_RATE_HZ
#: LeakyReLU negative slope of the adapter (paper §2.2: 0.1).
LEAKY_SLOPE = 0.1
#: Bundle subdirectory holding the adapter (``config.json`` + ``adapter.safetensors``).
ADAPTER_DIR = "adapter"
_WEIGHTS = "adapter.safetensors"
_CONFIG = "config.json"


class OmniError(UnissError, ValueError):
    """Bad S2ST-Omni input: features of the wrong shape, a placeholder count that does not match the
    adapter frames, or an adapter directory whose weights do not match its config."""


# ---------------------------------------------------------------------------------------- prompts
def n_adapter_frames(n_features: int, frame_stack: int) -> int:
    """Adapter frames (= placeholder tokens) of a clip with ``n_features`` 12.5 Hz states:
    ``ceil(n_features / frame_stack)``.

    Raises:
        OmniError: ``n_features < 1`` or ``frame_stack < 1``.
    """
    if n_features < 1 or frame_stack < 1:
        raise OmniError(f"need n_features >= 1 and frame_stack >= 1, got {n_features}, {frame_stack}")
    return math.ceil(n_features / frame_stack)


def build_omni_prompt(vocab: SpeechVocab, *, tgt: str, n_frames: int) -> str:
    """The S2TT prompt with ``n_frames`` adapter placeholders (module docstring).

    Args:
        vocab: token layout.
        tgt: target language (``en``/``zh``).
        n_frames: adapter frames ``P`` (>= 1).

    Returns:
        ``<|task_s2t_translation|>{tgt}<|audio_placeholder_1|> x P<|write_generate|>{tgt}<|start_content|>``.

    Raises:
        PromptError: unknown language; OmniError: ``n_frames < 1``.
    """
    if n_frames < 1:
        raise OmniError(f"the prompt needs at least one adapter frame, got {n_frames}")
    t = language_token(vocab, tgt, "target")
    return TASK_TOKEN + t + PLACEHOLDER_TOKEN * int(n_frames) + "<|write_generate|>" + t + "<|start_content|>"


def build_omni_continuation(vocab: SpeechVocab, *, translation: str) -> str:
    """What the model writes after :func:`build_omni_prompt` (loss only on it):
    ``{translation}<|end_content|><|im_end|>`` (the UniSS S2TT continuation).

    Raises:
        PromptError: empty translation.
    """
    if translation is None or not str(translation).strip():
        raise PromptError("the S2ST-Omni continuation needs a translation")
    return f"{translation}<|end_content|>{IM_END}"


# ---------------------------------------------------------------------------------------- adapter
def stack_frames(states: np.ndarray | torch.Tensor, frame_stack: int) -> np.ndarray:
    """Stack ``k`` consecutive encoder states into one adapter input frame (zero padded at the end).

    Args:
        states: ``(T_f, D_f)`` float encoder states of one clip.
        frame_stack: ``k`` (>= 1).

    Returns:
        ``(P, k * D_f)`` float32 with ``P = ceil(T_f / k)``; row ``p`` = states ``p*k .. p*k+k-1``
        concatenated.

    Raises:
        OmniError: not 2-D, no frames, or ``frame_stack < 1``.
    """
    x = np.asarray(states, dtype=np.float32)
    if x.ndim != 2:
        raise OmniError(f"encoder states must be (T_f, D_f), got shape {tuple(x.shape)}")
    p = n_adapter_frames(x.shape[0], frame_stack)
    pad = p * frame_stack - x.shape[0]
    if pad:
        x = np.concatenate([x, np.zeros((pad, x.shape[1]), dtype=np.float32)])  # (P * k, D_f)
    return x.reshape(p, frame_stack * x.shape[1])  # (P, k * D_f)


@dataclass(frozen=True)
class AdapterConfig:
    """Shape of a :class:`SpeechAdapter` (stored as ``adapter/config.json``).

    Attributes:
        out_dim: LM hidden size ``H``.
        feature_dim: encoder width ``D_f`` (512).
        frame_stack: ``k`` states per adapter frame (default 2: 12.5 Hz -> 6.25 Hz).
        hidden_dim: width of the hidden layers (default ``out_dim``).
        n_layers: linear layers (paper §2.2: 4).
    """

    out_dim: int
    feature_dim: int = FEATURE_DIM
    frame_stack: int = 2
    hidden_dim: int | None = None
    n_layers: int = 4

    def __post_init__(self) -> None:
        if min(self.out_dim, self.feature_dim, self.frame_stack, self.n_layers) < 1 or (self.hidden_dim is not None and self.hidden_dim < 1):
            raise OmniError(f"adapter sizes must be positive: {self}")

    @property
    def in_dim(self) -> int:
        """Input width ``k * D_f``."""
        return self.frame_stack * self.feature_dim


class SpeechAdapter(nn.Module):
    """The lightweight speech adapter (paper §2.2, eq. 1-3): ``n_layers`` linear layers with
    LeakyReLU(0.1) between them, from stacked encoder states to the LM's input embedding space.

    ``forward`` takes already stacked frames (:func:`stack_frames`), so packed training batches
    (many clips' frames concatenated) and single clips go through the same call.

    Args:
        cfg: :class:`AdapterConfig`.
    """

    def __init__(self, cfg: AdapterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hid = cfg.hidden_dim or cfg.out_dim
        dims = [cfg.in_dim] + [hid] * (cfg.n_layers - 1) + [cfg.out_dim]
        layers: list[nn.Module] = []
        for i in range(cfg.n_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < cfg.n_layers - 1:
                layers.append(nn.LeakyReLU(LEAKY_SLOPE))
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Stacked frames ``(..., k * D_f)`` -> adapter outputs ``(..., H)`` in the dtype of the weights.

        Raises:
            OmniError: the last dimension is not ``k * D_f``.
        """
        if frames.shape[-1] != self.cfg.in_dim:
            raise OmniError(f"adapter input width {frames.shape[-1]} != frame_stack x feature_dim = {self.cfg.in_dim}")
        w = self.net[0].weight
        return self.net(frames.to(device=w.device, dtype=w.dtype))  # (..., H)


def save_adapter(adapter: SpeechAdapter, out_dir: str | Path) -> Path:
    """Write ``config.json`` and ``adapter.safetensors`` (fp32) into ``out_dir`` (created).

    Returns:
        ``out_dir`` as a ``Path``.
    """
    from safetensors.torch import save_file

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / _CONFIG).write_text(json.dumps(asdict(adapter.cfg), indent=2))
    save_file({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in adapter.state_dict().items()}, str(d / _WEIGHTS))
    return d


def load_adapter(path: str | Path, *, device: str = "cpu") -> SpeechAdapter:
    """Load an adapter written by :func:`save_adapter`, checking every key and shape (STYLE.md #14).

    Raises:
        OmniError: missing files, or weights whose keys/shapes do not match the config.
    """
    from safetensors.torch import load_file

    d = Path(path)
    if not (d / _CONFIG).is_file() or not (d / _WEIGHTS).is_file():
        raise OmniError(f"{d} is not an adapter directory (needs {_CONFIG} and {_WEIGHTS})")
    try:
        cfg = AdapterConfig(**json.loads((d / _CONFIG).read_text()))
    except (TypeError, json.JSONDecodeError) as e:
        raise OmniError(f"{d / _CONFIG}: bad adapter config ({e})") from None
    model = SpeechAdapter(cfg)
    sd = load_file(str(d / _WEIGHTS))
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    if want != got:
        raise OmniError(f"{d}: adapter weights do not match its config: missing={sorted(set(want) - set(got))} "
                        f"unexpected={sorted(set(got) - set(want))} "
                        f"shape={[k for k in want if k in got and want[k] != got[k]]}")
    model.load_state_dict(sd, strict=True)
    return model.to(device).eval()


def splice_adapter(embeds: torch.Tensor, input_ids: torch.Tensor, placeholder_id: int, adapted: torch.Tensor) -> torch.Tensor:
    """Replace the embeddings of the placeholder positions by the adapter outputs.

    Placeholders are filled in row-major order (row 0 left to right, then row 1 ...), which is the
    order in which training packs concatenate their samples' frames (training/omni.py).

    Args:
        embeds: ``(B, L, H)`` input embeddings of ``input_ids``.
        input_ids: ``(B, L)`` int64.
        placeholder_id: id of :data:`PLACEHOLDER_TOKEN` in the layout.
        adapted: ``(P_total, H)`` adapter outputs, one per placeholder.

    Returns:
        ``(B, L, H)`` new tensor (gradients flow into ``adapted`` and, where trainable, ``embeds``).

    Raises:
        OmniError: the number of placeholders differs from ``P_total`` or widths differ.
    """
    mask = input_ids == placeholder_id  # (B, L)
    n = int(mask.sum())
    if n != adapted.shape[0] or adapted.shape[-1] != embeds.shape[-1]:
        raise OmniError(f"{n} placeholder positions but {tuple(adapted.shape)} adapter outputs for width {embeds.shape[-1]}")
    flat = embeds.reshape(-1, embeds.shape[-1])  # (B * L, H)
    idx = mask.reshape(-1).nonzero(as_tuple=True)[0]  # (P_total,)
    out = flat.index_copy(0, idx, adapted.to(flat.dtype))  # (B * L, H)
    return out.reshape(embeds.shape)


# ---------------------------------------------------------------------------------------- features
def speech_features(wavs: Sequence[np.ndarray], model_dir: str | None = None) -> list[np.ndarray]:
    """Frozen encoder states of each clip (paper §2.2: the Whisper encoder is never updated).

    The Whisper-base encoder of the lite codec (``uniss.codecs.lite.features.WhisperStates``,
    CTranslate2 int8 on CPU) in the ``"clip"`` window (each clip encoded alone, so its states do not
    depend on other clips), 50 Hz states average-pooled by 4 to 12.5 Hz, not centred.

    Args:
        wavs: ``(N_i,)`` float32 mono 16 kHz clips.
        model_dir: CTranslate2 Whisper directory (default: the installed whisper-base).

    Returns:
        list of ``(T_f_i, 512)`` float32, ``T_f_i = round(12.5 * N_i / 16000)`` (>= 1).

    Raises:
        CodecError: the Whisper model is not installed.
    """
    from uniss.codecs.lite.features import whisper_states

    if not wavs:
        return []
    return whisper_states(model_dir).pooled([np.asarray(w, dtype=np.float32) for w in wavs], window="clip")


def adapter_inputs(states: np.ndarray, cfg: AdapterConfig | Any) -> np.ndarray:
    """``(T_f, D_f)`` states -> ``(P, k * D_f)`` adapter input frames for ``cfg.frame_stack``.

    Raises:
        OmniError: states wider than ``cfg.feature_dim`` or not 2-D.
    """
    x = np.asarray(states, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != cfg.feature_dim:
        raise OmniError(f"encoder states must be (T_f, {cfg.feature_dim}), got {tuple(x.shape)}")
    return stack_frames(x, cfg.frame_stack)
