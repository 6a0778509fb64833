"""Decoders that execute any `Subnet`: `build_model(name_or_config)(idx, subnet=None) -> logits`,
or with `targets` the mean next-token loss (`head_loss`)."""

from __future__ import annotations

from est_analysis.model_config import MODEL_CONFIGS, ModelConfig, get_config
from est_analysis.models.base import Decoder
from est_analysis.models.gpt2 import GPT2
from est_analysis.models.llama import Llama

__all__ = ["MODEL_CONFIGS", "Decoder", "ModelConfig", "build_model", "get_config"]


def build_model(name_or_config: str | ModelConfig | dict) -> Decoder:
    """A freshly initialised model; `model.config` holds its `ModelConfig`."""
    config = get_config(name_or_config)
    return {"gpt2": GPT2, "llama": Llama}[config.arch](config)
