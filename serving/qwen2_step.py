"""A lean one-token decode step for Qwen2 causal LMs (issue 17: continuous batching past 4x).

Why: at the demo size (hidden 256, 4 layers) a decode step of ``(B, 1)`` tokens costs a few
milliseconds of arithmetic, and transformers' generic forward (output dataclasses, mask builders,
per-module hooks, one ``Linear`` call per projection) adds as much again. This step computes the
same function from the same weights with fewer, larger kernels: the q/k/v projections of a layer
are one matmul, and so are its gate/up projections (weights concatenated once, when that copy is
small: :data:`FUSE_LIMIT_BYTES`), and the 2-D padding mask goes straight to
``torch.nn.functional.scaled_dot_product_attention`` with ``enable_gqa``.

The arithmetic follows transformers 5.23 ``models/qwen2/modeling_qwen2.py`` (``Qwen2RMSNorm``,
``Qwen2Attention``, ``Qwen2MLP``, ``Qwen2RotaryEmbedding`` for cos/sin; RMSNorm is
``torch.nn.functional.rms_norm``, and RoPE is applied to the query and key heads together): the
hidden states equal the library's ``Qwen2Model`` output up to float reassociation (tested:
``tests/unit/serving/test_qwen2_step.py``). Prefill stays on the library's forward; only steps of
one new token per row come here.

Shape legend: ``B`` rows, ``L`` cached time steps before the step, ``D`` hidden size, ``H`` query
heads, ``H_kv`` key/value heads, ``d`` head dim.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FUSE_LIMIT_BYTES", "Qwen2DecodeStep", "unsupported_reason"]

#: Largest weight copy (bytes, all layers together) made to fuse projections; past it the step
#: runs the projections one by one from the model's own weights (no extra memory). 256 MiB keeps a
#: 0.5B model (gate/up alone ~0.8 GB in float32) from doubling its MLP weights.
FUSE_LIMIT_BYTES = 256 * 2**20


def unsupported_reason(model: Any) -> str | None:
    """Why :class:`Qwen2DecodeStep` cannot run ``model`` (``None`` when it can).

    Supported: a ``Qwen2ForCausalLM`` whose layers are all full attention (no sliding window),
    with default RoPE (no scaling), SiLU MLP, biased q/k/v and no attention output bias.
    """
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "qwen2":
        return "not a Qwen2 model"
    body = getattr(model, "base_model", None)
    if body is None or body is model or not hasattr(body, "layers"):
        return "no Qwen2Model body"
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])) or getattr(cfg, "use_sliding_window", False):
        return "sliding-window attention"
    rope = getattr(cfg, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        return f"RoPE type {rope.get('rope_type')}"
    if getattr(cfg, "hidden_act", None) != "silu":
        return f"activation {cfg.hidden_act}"
    a = body.layers[0].self_attn
    if a.q_proj.bias is None or a.o_proj.bias is not None:
        return "unexpected attention biases"
    return None


class _Layer:
    __slots__ = ("ln1", "eps1", "ln2", "eps2", "qkv_w", "qkv_b", "q", "k", "v", "o", "gu", "gate", "up", "down")


class Qwen2DecodeStep:
    """``(ids (B, 1), mask (B, L + 1), positions (B, 1), cache)`` -> final hidden states ``(B, D)``.

    Args:
        model: ``Qwen2ForCausalLM`` in eval mode (see :func:`unsupported_reason`).
        fuse_limit_bytes: largest weight copy made to fuse projections (:data:`FUSE_LIMIT_BYTES`).

    The cache is a ``transformers`` cache whose ``update(k, v, layer)`` appends ``(B, H_kv, 1, d)``
    and returns the whole ``(B, H_kv, L + 1, d)`` keys and values (``DynamicCache``, also with the
    decoder's growing layers). Call under ``torch.inference_mode()``; the model's weights must not change
    afterwards (fused copies are taken once).

    Raises:
        ValueError: the model is not supported (reason from :func:`unsupported_reason`).
    """

    def __init__(self, model: Any, *, fuse_limit_bytes: int = FUSE_LIMIT_BYTES) -> None:
        import torch

        why = unsupported_reason(model)
        if why is not None:
            raise ValueError(f"lean Qwen2 step unsupported: {why}")
        self._torch = torch
        body = model.base_model
        cfg = model.config
        self.body = body
        self.n_heads = int(cfg.num_attention_heads)
        self.n_kv = int(cfg.num_key_value_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        extra = sum((a.self_attn.q_proj.weight.numel() + a.self_attn.k_proj.weight.numel() + a.self_attn.v_proj.weight.numel()
                     + a.mlp.gate_proj.weight.numel() + a.mlp.up_proj.weight.numel()) * a.mlp.up_proj.weight.element_size()
                    for a in body.layers)
        self.fused = extra <= fuse_limit_bytes
        self.layers: list[_Layer] = []
        with torch.no_grad():
            for layer in body.layers:
                a, m, o = layer.self_attn, layer.mlp, _Layer()
                o.ln1, o.eps1 = layer.input_layernorm.weight.detach(), float(layer.input_layernorm.variance_epsilon)
                o.ln2, o.eps2 = layer.post_attention_layernorm.weight.detach(), float(layer.post_attention_layernorm.variance_epsilon)
                o.o, o.down = a.o_proj.weight.detach(), m.down_proj.weight.detach()
                if self.fused:
                    o.qkv_w = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach()  # ((H + 2 H_kv) d, D)
                    o.qkv_b = torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]).detach()
                    o.gu = torch.cat([m.gate_proj.weight, m.up_proj.weight]).detach()  # (2 I, D)
                else:
                    o.q = (a.q_proj.weight.detach(), a.q_proj.bias.detach())
                    o.k = (a.k_proj.weight.detach(), a.k_proj.bias.detach())
                    o.v = (a.v_proj.weight.detach(), a.v_proj.bias.detach())
                    o.gate, o.up = m.gate_proj.weight.detach(), m.up_proj.weight.detach()
                self.layers.append(o)
        self.norm, self.norm_eps = body.norm.weight.detach(), float(body.norm.variance_epsilon)

    def _rms(self, x, w, eps: float):
        """``Qwen2RMSNorm``: ``w * x / sqrt(mean(x^2) + eps)`` by ``torch.nn.functional.rms_norm``."""
        from torch.nn.functional import rms_norm

        return rms_norm(x, (x.shape[-1],), w, eps)

    @staticmethod
    def _rotate(x, cos, sin):
        """RoPE of ``x`` ``(B, 1, h, d)`` with ``cos``/``sin`` ``(B, 1, 1, d)``: the library's
        ``x * cos + rotate_half(x) * sin``, applied to the query and key heads in one pass."""
        from torch import cat

        half = x.shape[-1] // 2
        return x * cos + cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    def __call__(self, ids, mask, positions, cache):
        """One decode step; see the class docstring for shapes. Returns ``(B, D)``."""
        from torch.nn.functional import linear, scaled_dot_product_attention, silu

        B = ids.shape[0]
        H, Hk, d = self.n_heads, self.n_kv, self.head_dim
        x = self.body.embed_tokens(ids)  # (B, 1, D)
        cos, sin = self.body.rotary_emb(x, positions)  # (B, 1, d) each
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)  # (B, 1, 1, d): broadcast over heads
        keep = mask.to(device=x.device, dtype=self._torch.bool)[:, None, None, :]  # (B, 1, 1, L + 1)
        for i, o in enumerate(self.layers):
            h = self._rms(x, o.ln1, o.eps1)  # (B, 1, D)
            if self.fused:
                qkv = linear(h, o.qkv_w, o.qkv_b).view(B, 1, H + 2 * Hk, d)  # (B, 1, H + 2 H_kv, d)
                qk = self._rotate(qkv[:, :, :H + Hk], cos, sin)  # (B, 1, H + H_kv, d)
                v = qkv[:, :, H + Hk:]
            else:
                q, k = linear(h, *o.q).view(B, 1, H, d), linear(h, *o.k).view(B, 1, Hk, d)
                qk = self._rotate(self._torch.cat((q, k), dim=2), cos, sin)
                v = linear(h, *o.v).view(B, 1, Hk, d)
            q, k, v = qk[:, :, :H].transpose(1, 2), qk[:, :, H:].transpose(1, 2), v.transpose(1, 2)  # (B, h, 1, d)
            ks, vs = cache.update(k, v, i)  # (B, H_kv, L + 1, d) each
            att = scaled_dot_product_attention(q, ks, vs, attn_mask=keep, enable_gqa=H != Hk)  # (B, H, 1, d)
            x = x + linear(att.transpose(1, 2).reshape(B, 1, H * d), o.o)
            h = self._rms(x, o.ln2, o.eps2)
            if self.fused:
                g, u = linear(h, o.gu).chunk(2, dim=-1)  # (B, 1, I) each
            else:
                g, u = linear(h, o.gate), linear(h, o.up)
            x = x + linear(silu(g) * u, o.down)
        return self._rms(x, self.norm, self.norm_eps)[:, -1]  # (B, D)
