"""Model configurations: the paper's GPT-2 124M and TinyLlama 1.1B, plus small configs for
the `smoke` and `cpu` scales.

The small configs keep the paper's shape ratios (MLP 4x for GPT-2, SwiGLU ~8/3x and GQA for
Llama) and are sized so that transformer layers, not the LM head, dominate the step FLOPs:
per token the layers cost ~L*(24 d^2 + 4 T d) against 2 d V for the head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class ModelConfig:
    name: str
    arch: Literal["gpt2", "llama"]
    n_layer: int
    n_head: int
    n_kv_head: int  # == n_head for GPT-2 (multi-head attention)
    d_model: int
    d_mlp: int
    vocab_size: int
    block_size: int  # maximum context length
    rope_theta: float = 10000.0  # Llama only
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.arch not in ("gpt2", "llama"):
            raise ValueError(f"arch={self.arch!r}: use 'gpt2' or 'llama'")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}")
        if self.arch == "gpt2" and self.n_kv_head != self.n_head:
            raise ValueError("GPT-2 uses multi-head attention: set n_kv_head = n_head")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 for GPT-2)."""
        return self.n_head // self.n_kv_head

    def with_vocab(self, vocab_size: int) -> "ModelConfig":
        return replace(self, vocab_size=vocab_size)

    def to_dict(self) -> dict:
        return asdict(self)


MODEL_CONFIGS: dict[str, ModelConfig] = {
    c.name: c
    for c in [
        # The paper's models (section 4.1 and 4.2).
        ModelConfig("gpt2-124m", "gpt2", n_layer=12, n_head=12, n_kv_head=12, d_model=768,
                    d_mlp=3072, vocab_size=50257, block_size=1024),
        ModelConfig("tinyllama-1.1b", "llama", n_layer=22, n_head=32, n_kv_head=4, d_model=2048,
                    d_mlp=5632, vocab_size=32000, block_size=2048),
        # `cpu` scale: layers are ~70 % of the step FLOPs at seq 256, vocab 8192.
        ModelConfig("gpt2-cpu", "gpt2", n_layer=6, n_head=8, n_kv_head=8, d_model=256,
                    d_mlp=1024, vocab_size=8192, block_size=256),
        ModelConfig("llama-cpu", "llama", n_layer=6, n_head=8, n_kv_head=4, d_model=256,
                    d_mlp=688, vocab_size=8192, block_size=256),
        # `regime` scale: small enough to train for ~300 tokens per parameter on a 2-core CPU,
        # the paper's regime (GPT-2: 78.6 B tokens / 124 M parameters ~ 630); layers ~80 % of
        # the step FLOPs at seq 64, vocab 512. The -d16 / -d80 widths are its model-size axis.
        ModelConfig("gpt2-regime", "gpt2", n_layer=4, n_head=4, n_kv_head=4, d_model=32,
                    d_mlp=128, vocab_size=512, block_size=64),
        ModelConfig("llama-regime", "llama", n_layer=4, n_head=4, n_kv_head=2, d_model=32,
                    d_mlp=88, vocab_size=512, block_size=64),
        ModelConfig("gpt2-regime-d16", "gpt2", n_layer=4, n_head=4, n_kv_head=4, d_model=16,
                    d_mlp=64, vocab_size=512, block_size=64),
        ModelConfig("gpt2-regime-d80", "gpt2", n_layer=4, n_head=4, n_kv_head=4, d_model=80,
                    d_mlp=320, vocab_size=512, block_size=64),
        # The width axis of issue #24: 4 layers, head size 8, MLP 4d, heads growing with width
        # (d=32 with 4 heads is gpt2-regime itself).
        *[ModelConfig(f"gpt2-l4-d{d}-h{d // 8}", "gpt2", n_layer=4, n_head=d // 8,
                      n_kv_head=d // 8, d_model=d, d_mlp=4 * d, vocab_size=512, block_size=64)
          for d in (64, 128, 256)],
        # `smoke` scale: seconds per run, for tests and CI.
        ModelConfig("gpt2-smoke", "gpt2", n_layer=4, n_head=4, n_kv_head=4, d_model=64,
                    d_mlp=256, vocab_size=512, block_size=64),
        ModelConfig("llama-smoke", "llama", n_layer=4, n_head=4, n_kv_head=2, d_model=64,
                    d_mlp=176, vocab_size=512, block_size=64),
    ]
}


def get_config(name_or_config: str | ModelConfig | dict) -> ModelConfig:
    """Resolve a config name, a dict of fields, or a ModelConfig."""
    if isinstance(name_or_config, ModelConfig):
        return name_or_config
    if isinstance(name_or_config, dict):
        return ModelConfig(**name_or_config)
    if name_or_config not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {name_or_config!r}; choose one of {sorted(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[name_or_config]
