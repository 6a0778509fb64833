"""Our decoders in HF transformers' layouts: the HF model built from our weights gives our
logits (GPT-2's transposed Conv1D, Llama's GQA and RoPE), and HF's own saved directories read
back as our decoders with identical weights."""

import json

import pytest
import torch

from est_analysis.models import build_model, get_config
from est_analysis.models.hf import (HFModelError, from_hf_state, hf_config_dict, load_hf_model,
                                    to_hf_state)

transformers = pytest.importorskip("transformers")


def _perturbed(name: str) -> torch.nn.Module:
    """A model whose norms and biases are not at their initial 1/0 (so a swapped or
    untransposed weight cannot hide)."""
    torch.manual_seed(0)
    model = build_model(name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _hf_model(model) -> torch.nn.Module:
    config = transformers.AutoConfig.for_model(**hf_config_dict(model.config, 0, 0))
    hf = transformers.AutoModelForCausalLM.from_config(config)
    hf.load_state_dict(to_hf_state(model), strict=False)
    hf.tie_weights()
    return hf.eval()


@pytest.mark.parametrize("name", ["gpt2-smoke", "llama-smoke"])
def test_hf_model_from_our_weights_gives_our_logits(name, tmp_path):
    model = _perturbed(name)
    assert name != "llama-smoke" or model.config.n_kv_head < model.config.n_head  # GQA
    hf = _hf_model(model)
    idx = torch.randint(0, model.config.vocab_size, (3, model.config.block_size))
    with torch.no_grad():
        ours, theirs = model(idx), hf(idx).logits
    assert (ours - theirs).abs().max().item() < 1e-4
    hf.save_pretrained(tmp_path, safe_serialization=True)  # HF's own files, read back
    loaded = load_hf_model(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    back = from_hf_state(model.config, hf.state_dict())
    assert back.keys() == model.state_dict().keys()


@pytest.mark.parametrize("name", ["gpt2-smoke", "llama-smoke"])
def test_base_model_files_without_the_prefix_load_too(name, tmp_path):
    """The original `gpt2` weights are saved from GPT2Model: 'h.0.ln_1.weight', no head."""
    from safetensors.torch import save_file

    model = _perturbed(name)
    hf = _hf_model(model)
    prefix = {"gpt2-smoke": "transformer.", "llama-smoke": "model."}[name]
    base = {k.removeprefix(prefix): v.contiguous() for k, v in hf.state_dict().items()
            if k.startswith(prefix)}
    (tmp_path / "config.json").write_text(json.dumps(hf_config_dict(model.config, 0, 0)))
    save_file(base, str(tmp_path / "model.safetensors"))
    loaded = load_hf_model(tmp_path).state_dict()
    for key, value in model.state_dict().items():
        if key != "lm_head.weight" or name == "gpt2-smoke":  # Llama: no head in a base model
            assert torch.equal(loaded[key], value), key


def test_unsupported_hf_directories_are_refused(tmp_path):
    config = hf_config_dict(get_config("llama-smoke"), 0, 0)
    for change, message in [({"model_type": "mistral"}, "model_type 'mistral' is not supported"),
                            ({"rope_parameters": {"rope_type": "linear", "factor": 2.0}},
                             "RoPE type 'linear' is not supported"),
                            ({"attention_bias": True}, "attention_bias=True is not supported")]:
        (tmp_path / "config.json").write_text(json.dumps(config | change))
        with pytest.raises(HFModelError, match=message):
            load_hf_model(tmp_path)
    # the issue's case: a rope_scaling block (older transformers' name) named by its type
    (tmp_path / "config.json").write_text(json.dumps(config | {"rope_scaling": {"type": "dynamic", "factor": 2.0}}))
    with pytest.raises(HFModelError, match="rope_scaling / RoPE type 'dynamic' is not supported"):
        load_hf_model(tmp_path)
    # GPT-2 with a head of its own: est's GPT-2 ties the head, so it would run another function
    gpt2 = hf_config_dict(get_config("gpt2-smoke"), 0, 0)
    (tmp_path / "config.json").write_text(json.dumps(gpt2 | {"tie_word_embeddings": False}))
    with pytest.raises(HFModelError, match="tie_word_embeddings=False is not supported"):
        load_hf_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(HFModelError, match="holds no weights"):
        load_hf_model(tmp_path)
    with pytest.raises(HFModelError, match="no config.json"):
        load_hf_model(tmp_path / "nowhere")
