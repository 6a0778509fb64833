"""Our decoders in HF transformers' layouts, both ways, and local HF model directories read as
our decoders (no download; safetensors or PyTorch weight files, sharded or not).

- GPT-2 <-> `GPT2LMHeadModel`: HF keeps GPT-2's `Conv1D` layers, whose weights are stored
  (in, out), so every matrix is transposed; the fused QKV keeps the same q, k, v order; the
  LM head is tied to the token embedding in both.
- Llama <-> `LlamaForCausalLM`: the same half-split RoPE layout, grouped-query K/V and untied
  head, so names map one to one.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from est_analysis.io import read_json
from est_analysis.model_config import ModelConfig
from est_analysis.models.base import Decoder
from est_analysis.models import build_model

# (our name, HF name, transposed) per architecture; {i} is the layer
NAMES = {
    "gpt2": [("wte.weight", "transformer.wte.weight", False),
             ("wpe.weight", "transformer.wpe.weight", False),
             ("blocks.{i}.norm_1.weight", "transformer.h.{i}.ln_1.weight", False),
             ("blocks.{i}.norm_1.bias", "transformer.h.{i}.ln_1.bias", False),
             ("blocks.{i}.attn.qkv.weight", "transformer.h.{i}.attn.c_attn.weight", True),
             ("blocks.{i}.attn.qkv.bias", "transformer.h.{i}.attn.c_attn.bias", False),
             ("blocks.{i}.attn.out.weight", "transformer.h.{i}.attn.c_proj.weight", True),
             ("blocks.{i}.attn.out.bias", "transformer.h.{i}.attn.c_proj.bias", False),
             ("blocks.{i}.norm_2.weight", "transformer.h.{i}.ln_2.weight", False),
             ("blocks.{i}.norm_2.bias", "transformer.h.{i}.ln_2.bias", False),
             ("blocks.{i}.mlp.up.weight", "transformer.h.{i}.mlp.c_fc.weight", True),
             ("blocks.{i}.mlp.up.bias", "transformer.h.{i}.mlp.c_fc.bias", False),
             ("blocks.{i}.mlp.out.weight", "transformer.h.{i}.mlp.c_proj.weight", True),
             ("blocks.{i}.mlp.out.bias", "transformer.h.{i}.mlp.c_proj.bias", False),
             ("norm_f.weight", "transformer.ln_f.weight", False),
             ("norm_f.bias", "transformer.ln_f.bias", False)],
    "llama": [("wte.weight", "model.embed_tokens.weight", False),
              ("blocks.{i}.norm_1.weight", "model.layers.{i}.input_layernorm.weight", False),
              ("blocks.{i}.attn.q.weight", "model.layers.{i}.self_attn.q_proj.weight", False),
              ("blocks.{i}.attn.k.weight", "model.layers.{i}.self_attn.k_proj.weight", False),
              ("blocks.{i}.attn.v.weight", "model.layers.{i}.self_attn.v_proj.weight", False),
              ("blocks.{i}.attn.out.weight", "model.layers.{i}.self_attn.o_proj.weight", False),
              ("blocks.{i}.norm_2.weight", "model.layers.{i}.post_attention_layernorm.weight", False),
              ("blocks.{i}.mlp.gate.weight", "model.layers.{i}.mlp.gate_proj.weight", False),
              ("blocks.{i}.mlp.up.weight", "model.layers.{i}.mlp.up_proj.weight", False),
              ("blocks.{i}.mlp.out.weight", "model.layers.{i}.mlp.down_proj.weight", False),
              ("norm_f.weight", "model.norm.weight", False),
              ("lm_head.weight", "lm_head.weight", False)],
}
ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}
BASE_PREFIX = {"gpt2": "transformer.", "llama": "model."}


class HFModelError(ValueError):
    """A directory that is not a local HF model of an architecture this toolkit runs."""


def hf_config_dict(config: ModelConfig, bos_id: int | None, eos_id: int | None) -> dict:
    """The `config.json` of `config` for transformers."""
    if config.arch == "gpt2":
        return {"model_type": "gpt2", "architectures": [ARCHITECTURES["gpt2"]],
                "vocab_size": config.vocab_size, "n_positions": config.block_size,
                "n_embd": config.d_model, "n_layer": config.n_layer, "n_head": config.n_head,
                "n_inner": config.d_mlp, "activation_function": "gelu_new",
                "layer_norm_epsilon": config.norm_eps, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
                "attn_pdrop": 0.0, "tie_word_embeddings": True, "bos_token_id": bos_id,
                "eos_token_id": eos_id}
    return {"model_type": "llama", "architectures": [ARCHITECTURES["llama"]],
            "vocab_size": config.vocab_size, "hidden_size": config.d_model,
            "intermediate_size": config.d_mlp, "num_hidden_layers": config.n_layer,
            "num_attention_heads": config.n_head, "num_key_value_heads": config.n_kv_head,
            "head_dim": config.head_dim, "max_position_embeddings": config.block_size,
            "rms_norm_eps": config.norm_eps, "hidden_act": "silu", "tie_word_embeddings": False,
            "attention_bias": False, "mlp_bias": False,
            "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
            "bos_token_id": bos_id, "eos_token_id": eos_id}


def model_config_from_hf(hf: dict, name: str) -> ModelConfig:
    """Our `ModelConfig` of an HF `config.json`, refused where the architecture differs."""
    kind = hf.get("model_type")
    if kind == "gpt2":
        _require(hf, name, activation_function=("gelu_new", "gelu_pytorch_tanh"),
                 scale_attn_weights=(True,), scale_attn_by_inverse_layer_idx=(False,),
                 reorder_and_upcast_attn=(False,), tie_word_embeddings=(True,))
        d = hf["n_embd"]
        return ModelConfig(name=name, arch="gpt2", n_layer=hf["n_layer"], n_head=hf["n_head"],
                           n_kv_head=hf["n_head"], d_model=d, d_mlp=hf.get("n_inner") or 4 * d,
                           vocab_size=hf["vocab_size"], block_size=hf["n_positions"],
                           norm_eps=hf.get("layer_norm_epsilon", 1e-5))
    if kind == "llama":
        rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
        for block in (hf.get("rope_parameters") or {}, hf.get("rope_scaling") or {}):  # new, old name
            kind_of_rope = block.get("rope_type", block.get("type", "default"))
            if kind_of_rope != "default":
                raise HFModelError(f"{name}: rope_scaling / RoPE type {kind_of_rope!r} is not "
                                   "supported (est runs the default, unscaled RoPE)")
        _require(hf, name, hidden_act=("silu",), attention_bias=(False,), mlp_bias=(False,))
        heads = hf["num_attention_heads"]
        if hf.get("head_dim", hf["hidden_size"] // heads) * heads != hf["hidden_size"]:
            raise HFModelError(f"{name}: head_dim x heads != hidden_size is not supported")
        return ModelConfig(name=name, arch="llama", n_layer=hf["num_hidden_layers"],
                           n_head=heads, n_kv_head=hf.get("num_key_value_heads") or heads,
                           d_model=hf["hidden_size"], d_mlp=hf["intermediate_size"],
                           vocab_size=hf["vocab_size"], block_size=hf["max_position_embeddings"],
                           rope_theta=rope.get("rope_theta", hf.get("rope_theta", 10000.0)),
                           norm_eps=hf.get("rms_norm_eps", 1e-6))
    raise HFModelError(f"{name}: model_type {kind!r} is not supported; est reads GPT-2 "
                       "(GPT2LMHeadModel) and Llama (LlamaForCausalLM) directories")


def to_hf_state(model: Decoder) -> dict[str, torch.Tensor]:
    """`model`'s weights under HF names and layouts (GPT-2's tied head left to HF)."""
    return {hf: (ours.t() if transposed else ours).contiguous()
            for hf, ours, transposed in _pairs(model.config, model.state_dict(), to_hf=True)}


def from_hf_state(config: ModelConfig, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF weights under our names and layouts (a tied Llama head is copied from the embedding).
    Files saved from the base model (`GPT2Model`, `LlamaModel`, as the original `gpt2` weights
    are) lack the `transformer.` / `model.` prefix; it is added."""
    prefix = BASE_PREFIX[config.arch]
    if not any(key.startswith(prefix) for key in state):
        state = {(key if key == "lm_head.weight" else prefix + key): value
                 for key, value in state.items()}
    if config.arch == "llama" and "lm_head.weight" not in state:
        state = {**state, "lm_head.weight": state["model.embed_tokens.weight"]}
    ours = {name: (hf.t() if transposed else hf).contiguous()
            for name, hf, transposed in _pairs(config, state, to_hf=False)}
    if config.arch == "gpt2":
        ours["lm_head.weight"] = ours["wte.weight"]
    return ours


def load_hf_model(path: str | Path) -> Decoder:
    """The GPT-2 or Llama model in the local HF directory `path`, as our decoder (fp32)."""
    path = Path(path).expanduser()
    if not (path / "config.json").exists():
        raise HFModelError(f"{path} is not an HF model directory (no config.json)")
    config = model_config_from_hf(read_json(path / "config.json", "restore the model's config.json"), f"hf:{path.name}")
    model = build_model(config)
    state = {k: v.float() for k, v in _read_weights(path).items()}
    try:
        model.load_state_dict(from_hf_state(config, state))
    except (KeyError, RuntimeError) as err:
        raise HFModelError(f"{path}: weights do not match its config.json ({err})") from None
    return model


def _pairs(config: ModelConfig, state: dict, to_hf: bool):
    """(target name, source tensor, transposed) for every mapped weight."""
    for ours, hf, transposed in NAMES[config.arch]:
        layers = range(config.n_layer) if "{i}" in ours else [None]
        for i in layers:
            a, b = ours.format(i=i), hf.format(i=i)
            source, target = (a, b) if to_hf else (b, a)
            if source not in state:
                raise KeyError(f"missing weight {source!r}")
            yield target, state[source], transposed


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    for index_name, loader in (("model.safetensors.index.json", _safetensors_load),
                               ("pytorch_model.bin.index.json", _torch_load)):
        if (path / index_name).exists():
            shards = sorted(set(read_json(path / index_name, "restore the model's index")["weight_map"].values()))
            return {k: v for shard in shards for k, v in loader(str(path / shard)).items()}
    if (path / "model.safetensors").exists():
        return _safetensors_load(str(path / "model.safetensors"))
    if (path / "pytorch_model.bin").exists():
        return _torch_load(str(path / "pytorch_model.bin"))
    raise HFModelError(f"{path} holds no weights (model.safetensors or pytorch_model.bin)")


def _torch_load(file: str) -> dict[str, torch.Tensor]:
    """A PyTorch weight file, read without running any code it holds (`weights_only`)."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise HFModelError(f"{file} holds objects other than tensors, which est does not load "
                           "(loading them could run code): save the weights as safetensors, or "
                           "as a plain state dict of tensors") from None
    except Exception as err:  # torch raises many kinds for damaged files
        raise HFModelError(f"{file} is unreadable (truncated or corrupted: {type(err).__name__}); "
                           "restore a good copy of the model") from None


def _safetensors_load(file: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(file)
    except (SafetensorError, OSError) as err:
        raise HFModelError(f"{file} is not a readable safetensors file ({err}); restore a good "
                           "copy of the model") from None


def _require(hf: dict, name: str, **allowed: tuple) -> None:
    for key, values in allowed.items():
        if key in hf and hf[key] not in values:
            raise HFModelError(f"{name}: {key}={hf[key]!r} is not supported (est runs {values[0]!r})")


