"""`--init`: start a run from existing weights (litgpt's `--initial_checkpoint_dir`, HF's
`from_pretrained`): an est run (directory, checkpoint or snapshot) or a local HF GPT-2/Llama
directory, e.g. one `est export` wrote. The weights must be those of the run's model (same
architecture and dimensions) and their tokenizer the run's data's (same vocabulary, id for
id); only the weights are taken: the optimizer, schedule and step start afresh."""

from __future__ import annotations

from pathlib import Path

from est_analysis.data import TokenData
from est_analysis.data.tokenizer_files import TextTokenizer
from est_analysis.model_config import MODEL_CONFIGS, ModelConfig
from est_analysis.models import Decoder
from est_analysis.training.reopen import load_run

SHAPE_FIELDS = ("arch", "n_layer", "n_head", "n_kv_head", "d_model", "d_mlp", "vocab_size",
                "block_size", "rope_theta", "norm_eps")


def initialise_from(source: str, model: Decoder, data: TokenData) -> dict:
    """Copy the weights of `source` into `model`; what was loaded, for config.yaml."""
    trained = load_run(source)
    _check_architecture(source, trained.model.config, model.config)
    _check_tokenizer(source, trained.data.tokenizer, data.tokenizer)
    model.load_state_dict(trained.model.state_dict())
    return {"source": str(Path(source).expanduser().resolve()), "step": trained.step,
            "model": trained.model.config.name, "data_fingerprint": trained.data.fingerprint}


def _check_architecture(source: str, theirs: ModelConfig, ours: ModelConfig) -> None:
    differ = {f: (getattr(theirs, f), getattr(ours, f)) for f in SHAPE_FIELDS
              if getattr(theirs, f) != getattr(ours, f)}
    if not differ:
        return
    listed = ", ".join(f"{f} {a} vs {b}" for f, (a, b) in differ.items())
    same = [name for name, c in MODEL_CONFIGS.items()
            if all(getattr(c, f) == getattr(theirs, f) for f in SHAPE_FIELDS if f != "vocab_size")]
    hint = (f"pass --model {same[0]}" if same and "vocab_size" not in differ else
            "pass the --model of its dimensions" if not same else
            f"pass --model {same[0]} and data tokenized with its tokenizer")
    raise ValueError(f"--init {source}: its model is not this run's ({listed}, --init vs "
                     f"--model {ours.name}): {hint}")


def _check_tokenizer(source: str, theirs: TextTokenizer, ours: TextTokenizer) -> None:
    size = theirs.get_vocab_size()
    first = next((i for i in range(size) if theirs.id_to_token(i) != ours.id_to_token(i)), None)
    if first is not None:
        raise ValueError(f"--init {source}: its tokenizer is not the data's (id {first} is "
                         f"{theirs.id_to_token(first)!r} there, {ours.id_to_token(first)!r} here): "
                         "train on data tokenized with its tokenizer (--tokenizer FILE, or est "
                         "data prepare --tokenizer FILE; an `est export` directory holds its run's "
                         "tokenizer)")


def check_initialisable(config: ModelConfig, first: ModelConfig) -> None:
    """A method whose model starts smaller than it ends (Staged Training) cannot start from
    full-size weights."""
    if any(getattr(first, f) != getattr(config, f) for f in SHAPE_FIELDS):
        raise ValueError(f"--init needs a method that trains the full model from the first step; "
                         f"this one starts at {first.name} (d_model {first.d_model}, n_layer "
                         f"{first.n_layer}) and grows to {config.name}")
