"""Our Transformer as a CTranslate2 model, built with CTranslate2's own specification API.

:func:`transformer_spec` fills a ``ctranslate2.specs.TransformerSpec`` from a model directory's
weights, as CTranslate2's OpenNMT-py converter does for its models: the query, key and value
projections fused into one matrix ([q; k; v] for self-attention, [k; v] for the
cross-attention's keys and values), each sublayer's LayerNorm, the final LayerNorms of a pre-norm
model, and our sinusoidal position table itself (CTranslate2's own table puts the sines and the
cosines in two halves; ours interleaves them, Vaswani et al. 2017 §3.5). The weights are read
with ``safetensors.numpy``: no torch. An RNN has no CTranslate2 equivalent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seqattn.errors import UsageError

#: CTranslate2's weight and compute types by our names (``export --dtype`` with ``--format
#: ctranslate2``, checked in :func:`seqattn.export.export_model`; ``translate --precision``).
QUANTIZATIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8",
                 "int8_float32": "int8_float32", "int8_float16": "int8_float16",
                 "int8_bfloat16": "int8_bfloat16", "int16": "int16"}
LAYER_NORM_EPS = 1e-5   # torch.nn.LayerNorm's, which the models use


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    """The position table of :func:`seqattn.attention.sinusoidal_positions`, in numpy
    (float64 angles, as there). Shapes: -> (max_len, d_model) float32."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]                # (L, 1)
    two_i = np.arange(0, d_model, 2, dtype=np.float64)                 # (ceil(d/2),)
    angles = pos / np.power(10000.0, two_i / d_model)                  # (L, ceil(d/2))
    pe = np.zeros((max_len, d_model), dtype=np.float64)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return pe.astype(np.float32)


def transformer_spec(model_cfg: Any, weights: dict[str, np.ndarray],
                     src_tokens: list[str], tgt_tokens: list[str]) -> Any:
    """A validated ``TransformerSpec`` of our Transformer (``model_cfg``: its ModelConfig)."""
    from ctranslate2.specs import common_spec, transformer_spec

    if model_cfg.arch != "transformer":
        raise UsageError(f"CTranslate2 cannot hold a {model_cfg.arch} model (it runs "
                         "Transformers only): export it without --format ctranslate2")
    w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    pre_norm = model_cfg.norm == "pre"
    spec = transformer_spec.TransformerSpec.from_config(
        (model_cfg.enc_layers, model_cfg.dec_layers), model_cfg.heads, pre_norm=pre_norm,
        activation=common_spec.Activation.RELU)
    spec.config.layer_norm_epsilon = LAYER_NORM_EPS
    spec.config.add_source_eos = True          # our sources end with eos (data.pad_sources)
    table = sinusoidal_table(model_cfg.max_positions, model_cfg.hidden_size)
    _stack(spec.encoder, w, "encoder", "src_embed", table, pre_norm, "enc_norm")
    _stack(spec.decoder, w, "decoder", "tgt_embed", table, pre_norm, "dec_norm")
    spec.decoder.projection.weight = w["generator.weight"]
    if "generator.bias" in w:
        spec.decoder.projection.bias = w["generator.bias"]
    spec.register_source_vocabulary(src_tokens)
    spec.register_target_vocabulary(tgt_tokens)
    spec.validate()
    return spec


def _stack(spec: Any, w: dict[str, np.ndarray], name: str, embed: str, table: np.ndarray,
           pre_norm: bool, final_norm: str) -> None:
    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    # shared tensors are stored once: the target embedding may be the output projection
    # (tie_embeddings), the source embedding the target one (a joint vocabulary)
    names = [f"{embed}.weight", "tgt_embed.weight", "generator.weight"]
    embeddings.weight = w[next(n for n in names if n in w)]
    spec.scale_embeddings = True               # x = embed · √d + PE, as _embed does
    spec.position_encodings.encodings = table
    if pre_norm:
        _norm(spec.layer_norm, w, final_norm)
    for i, layer in enumerate(spec.layer):
        p = f"{name}.{i}"
        if name == "encoder":
            _attention(layer.self_attention, w, f"{p}.self_attn", fused=("w_q", "w_k", "w_v"))
            _norm(layer.self_attention.layer_norm, w, f"{p}.res_attn.norm")
        else:
            _attention(layer.self_attention, w, f"{p}.self_attn", fused=("w_q", "w_k", "w_v"))
            _norm(layer.self_attention.layer_norm, w, f"{p}.res_self.norm")
            _linear(layer.attention.linear[0], w, f"{p}.cross_attn.w_q")
            _attention(layer.attention, w, f"{p}.cross_attn", fused=("w_k", "w_v"), first=1)
            _norm(layer.attention.layer_norm, w, f"{p}.res_cross.norm")
        _norm(layer.ffn.layer_norm, w, f"{p}.res_ff.norm")
        _linear(layer.ffn.linear_0, w, f"{p}.ff.net.0")
        _linear(layer.ffn.linear_1, w, f"{p}.ff.net.3")


def _attention(spec: Any, w: dict[str, np.ndarray], p: str, fused: tuple[str, ...],
               first: int = 0) -> None:
    """linear[first] = the fused projections ``fused``; the last linear = the output."""
    target = spec.linear[first]
    target.weight = np.concatenate([w[f"{p}.{n}.weight"] for n in fused])
    if all(f"{p}.{n}.bias" in w for n in fused):
        target.bias = np.concatenate([w[f"{p}.{n}.bias"] for n in fused])
    _linear(spec.linear[-1], w, f"{p}.w_o")


def _linear(spec: Any, w: dict[str, np.ndarray], p: str) -> None:
    spec.weight = w[f"{p}.weight"]
    if f"{p}.bias" in w:
        spec.bias = w[f"{p}.bias"]


def _norm(spec: Any, w: dict[str, np.ndarray], p: str) -> None:
    spec.gamma, spec.beta = w[f"{p}.weight"], w[f"{p}.bias"]


def convert(weights: dict[str, np.ndarray], model_cfg: Any, spm_models: tuple[Path, Path],
            out: Path, dtype: str) -> None:
    """Write the CTranslate2 model of ``weights`` (a model of ``model_cfg``; its vocabularies
    from the sentencepiece models ``spm_models``, source and target) into the new directory
    ``out``, quantized to ``dtype`` (a key of :data:`QUANTIZATIONS`)."""
    import sentencepiece as spm

    vocabs = []
    for path in spm_models:
        sp = spm.SentencePieceProcessor(model_file=str(path))
        vocabs.append([sp.id_to_piece(i) for i in range(sp.get_piece_size())])
    spec = transformer_spec(model_cfg, weights, *vocabs)
    spec.optimize(quantization=QUANTIZATIONS[dtype])
    out.mkdir()
    spec.save(str(out))
