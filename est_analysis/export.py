"""`est export`: a trained run as a directory HF transformers loads offline
(`AutoModelForCausalLM.from_pretrained(DIR)`, `AutoTokenizer.from_pretrained(DIR)`): the full
model as `GPT2LMHeadModel` or `LlamaForCausalLM` in safetensors, its config, the run's tokenizer
and `est_export.json` naming the run it came from, its step and its training config (so that
analysing the export reads the run's own data and split). Written to a temporary directory and
renamed, so DIR is complete or absent."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

from est_analysis.data import separator_id
from est_analysis.io import make_dirs
from est_analysis.data.tokenizer_files import SentencePieceTokenizer
from est_analysis.models.hf import hf_config_dict, to_hf_state
from est_analysis.training import load_run


def export_run(run: str | Path, out: str | Path) -> Path:
    """Write the run (directory, checkpoint or snapshot) to the new directory `out`."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--to {out} is a file; choose a new --to directory")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new --to directory")
    trained = load_run(run)
    model, tokenizer = trained.model.eval(), trained.data.tokenizer
    eos = separator_id(tokenizer)
    config = transformers.AutoConfig.for_model(**hf_config_dict(model.config, eos, eos))
    hf_model = transformers.AutoModelForCausalLM.from_config(config)
    missing = hf_model.load_state_dict(to_hf_state(model), strict=False).missing_keys
    if set(missing) - {"lm_head.weight"}:  # GPT-2's head is tied, set by tie_weights
        raise RuntimeError(f"export left weights unset: {missing}")
    hf_model.tie_weights()
    make_dirs(out.parent)
    _remove_stale_exports(out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        hf_model.save_pretrained(tmp, safe_serialization=True)
        _save_tokenizer(tokenizer, eos, tmp, transformers)
        (tmp / "est_export.json").write_text(json.dumps({
            "run": str(Path(run).resolve()), "step": trained.step, "method": trained.config.method,
            "preset": trained.config.preset, "scale": trained.config.scale,
            "seed": trained.config.seed, "data_fingerprint": trained.data.fingerprint,
            "train_config": dataclasses.asdict(trained.config)}, indent=2))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC or "No space left" in str(err):
            raise OSError(f"no space left on the device writing {out} "
                          f"({shutil.disk_usage(out.parent).free // 2**20} MiB free): the partial "
                          "export was removed; free some space and run the same command again") from None
        raise
    return out


# what `export_run` writes: a temporary directory holding only these is an export a killed
# process left behind
EXPORT_FILES = {"config.json", "generation_config.json", "model.safetensors", "est_export.json",
                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "tokenizer.model"}


def _remove_stale_exports(out: Path) -> None:
    """Remove the temporary directories a killed export to `out` left beside it (named as
    `mkdtemp` names them, real directories holding nothing but export files)."""
    for tmp in out.parent.glob(f".{out.name}.*"):
        if (len(tmp.name) == len(out.name) + 10 and tmp.is_dir() and not tmp.is_symlink()
                and all(p.is_file() and not p.is_symlink() and p.name in EXPORT_FILES
                        for p in tmp.iterdir())):
            shutil.rmtree(tmp)


def _save_tokenizer(tokenizer, eos: int, out: Path, transformers) -> None:
    """A `tokenizers` tokenizer as HF's fast tokenizer; a SentencePiece model as Llama's."""
    if isinstance(tokenizer, SentencePieceTokenizer):
        shutil.copyfile(tokenizer.path, out / "tokenizer.model")
        pieces = {role: tokenizer.id_to_token(i) for role, i in (
            ("bos_token", tokenizer.processor.bos_id()), ("eos_token", eos),
            ("unk_token", tokenizer.processor.unk_id())) if i >= 0}
        (out / "tokenizer_config.json").write_text(json.dumps(
            {"tokenizer_class": "LlamaTokenizer", "add_bos_token": False, **pieces}, indent=2))
        return
    end = tokenizer.id_to_token(eos)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=end,
                                                eos_token=end, unk_token=end)
    fast.save_pretrained(out)
