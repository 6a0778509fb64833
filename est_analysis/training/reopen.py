"""Reopen a trained run from its checkpoint or one of its snapshots: the model, its config and
its tokenized corpus, checked to be the corpus and tokenizer it was trained on."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from est_analysis.data import TokenData, fixed_batches
from est_analysis.io import read_json
from est_analysis.loss import Batch
from est_analysis.models import Decoder, build_model, get_config
from est_analysis.models.hf import load_hf_model
from est_analysis.training.checkpoint import CheckpointError, load_checkpoint
from est_analysis.training.config import TrainConfig
from est_analysis.training.device import resolve_device
from est_analysis.training.run_dir import checkpoint_file


@dataclass
class TrainedRun:
    model: Decoder
    config: TrainConfig
    data: TokenData
    step: int | None  # None: a model trained elsewhere (an HF directory `est export` did not write)

    def describe(self, path: str | Path, corpus: str = "train") -> str:
        """Where the model and its batches come from, for a report's first line: the run's
        step, or that the model was trained elsewhere; the split or corpus and the tokenizer."""
        model = f"{path} (step {self.step})" if self.step is not None else \
            f"{path} (trained elsewhere: its training step is not known)"
        source = self.config.data or self.config.corpus
        tokenizer = (f"the tokenizer {self.config.tokenizer}" if self.config.tokenizer else
                     "the run's own BPE" if not self.config.data else "the data's tokenizer")
        data = (f"the {corpus} split of {source}" if corpus in ("train", "val") else corpus)
        return f"{model}; batches from {data}, tokenized with {tokenizer}"

    def batches(self, corpus: str = "train", n_batches: int = 4, batch_size: int | None = None,
                seq_len: int | None = None) -> list[Batch]:
        """Fixed, evenly spaced batches of the run's `train` or `val` split, or of another
        corpus (a built-in name or a path) encoded with the run's tokenizer."""
        tokens: np.ndarray
        if corpus in ("train", "val"):
            tokens = self.data.train if corpus == "train" else self.data.val
        else:
            tokens = self.data.encode_other(corpus)
        return fixed_batches(tokens, n_batches, batch_size or self.config.batch_size,
                             seq_len or self.config.seq_len)


def load_run(path: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    """`path` is a run directory, its checkpoint.pt or a snapshot file, or a local HF model
    directory (GPT2LMHeadModel or LlamaForCausalLM, e.g. from `est export`)."""
    device = resolve_device(device) if isinstance(device, str) else device
    if is_hf_dir(path):
        return _load_hf(Path(path), device)
    checkpoint = checkpoint_file(path)
    state = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(state["config"], f"checkpoint {checkpoint}")
    data = config.load_data()
    if state.get("data_fingerprint") != data.fingerprint:
        raise CheckpointError(f"{checkpoint} was trained on a different corpus or tokenizer than "
                              f"{config.data or config.corpus!r} gives now (fingerprint {state.get('data_fingerprint')} "
                              f"vs {data.fingerprint})")
    final_config = get_config(config.model).with_vocab(data.vocab_size)
    # the model after the checkpoint's last step (Staged Training's is half-width before growth)
    model = build_model(config.policy(final_config).model_config_at(max(state["step"] - 1, 0)))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{checkpoint} does not match model {config.model}: {err}") from None
    return TrainedRun(model.to(device), config, data, state["step"])


def is_hf_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / "config.json").is_file() and not (path / "checkpoint.pt").exists()


def _load_hf(path: Path, device: str | torch.device) -> TrainedRun:
    """An HF model directory as a run: its weights, and the data it was trained on where
    `est export` recorded it (its `train`/`val` split and step); otherwise the built-in corpus
    tokenized with the directory's own tokenizer (prepared once into the cache), at step 0."""
    model = load_hf_model(path)
    exported = _exported_run(path)
    if exported is not None:
        return TrainedRun(model.to(device), *exported)
    config = TrainConfig(scale="smoke", method="original", tokenizer=str(path), batch_size=8,
                         seq_len=min(256, model.config.block_size))
    try:
        data = config.load_data()
    except (FileNotFoundError, ValueError) as err:
        raise CheckpointError(f"{path}: its tokenizer is needed to tokenize the corpus: {err}") from None
    return TrainedRun(model.to(device), config, data, None)


def _exported_run(path: Path) -> tuple[TrainConfig, TokenData, int] | None:
    """The config, data and step of the run `est export` wrote to `path`, when its data is
    still here and is what the run trained on; a warning and None when it is not."""
    record_file = path / "est_export.json"
    if not record_file.exists():
        return None
    record = read_json(record_file)
    if not isinstance(record, dict) or "train_config" not in record:  # exported before the
        return None                                                   # config was recorded
    if not isinstance(record.get("step"), int):
        raise CheckpointError(f"{record_file} has no integer 'step' (it has {record.get('step')!r}): "
                              "it was not written by `est export`; export the run again")
    config = TrainConfig.from_dict(record["train_config"], str(record_file))
    try:
        data = config.load_data()
    except (FileNotFoundError, ValueError) as err:
        warnings.warn(f"{path}: the data of the run it was exported from is not available here "
                      f"({err}); its train/val batches come from the built-in corpus instead",
                      stacklevel=3)
        return None
    if data.fingerprint != record.get("data_fingerprint"):
        warnings.warn(f"{path}: {config.data or config.corpus} is no longer the data the run was "
                      f"trained on (fingerprint {data.fingerprint}, the run's "
                      f"{record.get('data_fingerprint')}); its batches come from the built-in "
                      "corpus instead", stacklevel=3)
        return None
    return config, data, int(record["step"])
