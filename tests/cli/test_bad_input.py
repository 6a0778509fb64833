"""The bad-input table: every case exits with status 2 and one clear `error:` line naming the
bad value and the fix, never a traceback, and leaves no output directory behind (cases that
resume an existing run leave it as it was). Run as a script to print the table for docs/reliability.md:

    python -m tests.cli.test_bad_input
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import tempfile
from pathlib import Path

import pytest

from est_analysis.cli.main import main
from tests.helpers import tiny_bpe_tokenizer

TABLE = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"  # the bad-input table
TRAIN = ["train", "--scale", "smoke", "--no-progress"]
RATES = ".5,.5,1/1,1,1"


def _train(*flags: str):
    """A case that trains into $TMP/out with `flags`."""
    return lambda tmp: [*TRAIN, *flags, "--out", str(tmp / "out")]


def _user_corpus(tmp: Path, text: str) -> str:
    (tmp / "corpus").mkdir(exist_ok=True)
    (tmp / "corpus" / "a.txt").write_text(text)
    return str(tmp / "corpus")


def _corpus_file(tmp: Path, name: str, data: bytes) -> str:
    (tmp / name).write_bytes(data)
    return str(tmp / name)


def _trained(tmp: Path, *extra: str, name: str = "run") -> Path:
    run = tmp / name
    assert main([*TRAIN, "--steps", "12", "--out", str(run), *extra]) == 0
    return run


def _changed_corpus(tmp: Path) -> list[str]:
    corpus = _user_corpus(tmp, "a small corpus of plain words, repeated. " * 2000)
    run = _trained(tmp, "--corpus", corpus)
    (Path(corpus) / "a.txt").write_text("a different corpus now, other words. " * 2000)
    return [*TRAIN, "--steps", "12", "--corpus", corpus, "--out", str(run), "--resume"]


def _truncated_checkpoint(tmp: Path) -> list[str]:
    run = _trained(tmp)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    return [*TRAIN, "--steps", "12", "--out", str(run), "--resume"]


def _corrupt_checkpoint(tmp: Path) -> list[str]:
    run = _trained(tmp)
    (run / "checkpoint.pt").write_bytes(b"\x80\x04not a checkpoint")
    return ["hessian", "trace", str(run)]


def _yaml(tmp: Path, text: str) -> list[str]:
    (tmp / "c.yaml").write_text(text)
    return [*TRAIN, "--config", str(tmp / "c.yaml"), "--out", str(tmp / "out")]


# (what is wrong, how to build the command in a temporary directory, the message expected)
BAD_INPUTS = [
    ("rate <= 0", _train("--stages", "0.5,1", "--rates", "0,.5,1/1,1,1"),
     r"stage 1: p_H=0.0 is outside \(0, 1\]"),
    ("rate > 1", _train("--stages", "0.5,1", "--rates", ".5,.5,1.5/1,1,1"),
     r"stage 1: p_L=1.5 is outside \(0, 1\]"),
    ("non-increasing stage boundaries", _train("--stages", "0.6,0.3,1", "--rates",
                                                   ".5,.5,.5/.5,.5,1/1,1,1"),
     "must be strictly increasing"),
    ("last boundary != total steps", lambda t: [*TRAIN, "--steps", "30", "--stages", "10,20", "--rates", RATES,
                                                "--out", str(t / "out")],
     "the last stage boundary 20 must equal the total steps 30"),
    ("N*p not an integer", _train("--stages", "0.5,1", "--rates", ".3,.5,1/1,1,1"),
     r"p_H .* rate 0.3 x 4 units = 1.2 is not a whole number of units"),
    ("stages without rates", _train("--stages", "0.5,1"),
     "stages and rates go together"),
    ("unknown preset", _train("--preset", "est-gtp2"),
     "argument --preset: invalid choice: 'est-gtp2'"),
    ("unknown model", _train("--model", "gpt5"),
     "unknown model 'gpt5'; choose one of"),
    ("unknown method", _train("--method", "raptr2"),
     "argument --method: invalid choice: 'raptr2'"),
    ("missing corpus path", lambda t: [*TRAIN, "--corpus", str(t / "nowhere"), "--out", str(t / "out")],
     "is neither a built-in corpus .* nor an existing file or directory"),
    ("empty corpus", lambda t: [*TRAIN, "--corpus", _user_corpus(t, " \n"), "--out", str(t / "out")],
     "is empty: no non-blank text found"),
    ("corpus file of random bytes", lambda t: [*TRAIN, "--corpus", _corpus_file(
        t, "noise.txt", random.Random(0).randbytes(50_000)), "--out", str(t / "out")],
     r"corpus file .*noise\.txt is not text: it holds NUL bytes"),
    ("pre-tokenized .bin file as corpus", lambda t: [*TRAIN, "--corpus", _corpus_file(
        t, "train.bin", bytes(range(256)) * 100), "--out", str(t / "out")],
     r"train\.bin is not text.*est data describe DIR --tokenizer T.* --data DIR"),
    ("--scale paper on a built-in corpus", lambda t: [*TRAIN[:1], "--scale", "paper", "--out", str(t / "out")],
     "--scale paper .* needs your corpus and a pretrained tokenizer: pass --data DIR"),
    ("--data directory without meta.json", lambda t: [*TRAIN, "--data", str(t), "--out", str(t / "out")],
     "has no meta.json. Prepare a corpus with `est data prepare"),
    ("--data with --corpus", lambda t: [*TRAIN, "--data", str(t), "--corpus", "cpython-stdlib",
                                        "--out", str(t / "out")],
     "--data names prepared tokens; it goes without --corpus"),
    ("missing tokenizer file", lambda t: [*TRAIN, "--tokenizer", str(t / "gpt2.tiktoken"), "--out", str(t / "out")],
     "tokenizer .*gpt2.tiktoken' does not exist; pass a local file"),
    ("est data prepare: tokenizer of unknown format", lambda t: [
        "data", "prepare", "shakespeare", "--tokenizer", _corpus_file(t, "tok.txt", b"a\n"), "--out", str(t / "out")],
     r"tokenizer .*tok\.txt is not a known format"),
    ("est data prepare: a *.tiktoken file that is not ranks", lambda t: [
        "data", "prepare", "shakespeare", "--tokenizer", _corpus_file(t, "bad.tiktoken", b"abc\n"),
        "--out", str(t / "out")],
     r"bad\.tiktoken:1: expected 'base64-token rank', got 'abc'"),
    ("corpus file in another encoding", lambda t: [*TRAIN, "--corpus", _corpus_file(
        t, "latin.txt", "Fa\u00e7ade d\u00e9j\u00e0 vu. ".encode("latin-1") * 500), "--out", str(t / "out")],
     r"latin\.txt is not UTF-8 text: \d+ of its \d+ characters are undecodable"),
    ("corpus smaller than one batch", lambda t: [*TRAIN, "--corpus", _user_corpus(t, "tiny text " * 40),
                                                 "--out", str(t / "out")],
     r"split has \d+ tokens, fewer than one batch"),
    ("sequence longer than the context", _train("--seq-len", "4096"),
     "seq_len=4096 exceeds the context of gpt2-smoke"),
    ("zero steps", _train("--steps", "0"),
     "argument --steps: '0' must be an integer >= 1"),
    ("negative learning rate", _train("--lr", "-1"),
     "argument --lr: '-1' must be a finite number > 0"),
    ("output path is a file", lambda t: [*TRAIN, "--out", str(Path(t.joinpath("f").write_text("x") and t / "f") / "run")],
     "is a file; choose another --out"),
    ("non-writable output directory", lambda t: [*TRAIN, "--out", "/proc/est-run"],
     "cannot write to /proc"),
    ("malformed YAML config", lambda t: _yaml(t, "steps: [1,\n"), "is not valid YAML"),
    ("unknown field in YAML config", lambda t: _yaml(t, "stpes: 10\n"), r"unknown fields \['stpes'\]"),
    ("missing config file", lambda t: [*TRAIN, "--config", str(t / "none.yaml"), "--out", str(t / "out")],
     "config file .* does not exist"),
    ("run directory already holds a run", lambda t: [*TRAIN, "--steps", "12", "--out", str(_trained(t))],
     "already holds a run: pass --resume"),
    ("resume under an incompatible config", lambda t: [*TRAIN, "--steps", "12", "--seed", "5", "--out",
                                                       str(_trained(t)), "--resume"],
     r"cannot resume .* the config differs \(seed: checkpoint 0 vs now 5\)"),
    ("corpus/tokenizer changed since the checkpoint", _changed_corpus,
     "trained on a different corpus or tokenizer"),
    ("truncated checkpoint", _truncated_checkpoint, r"checkpoint\.pt is unreadable \(truncated or corrupted"),
    ("corrupt checkpoint (est hessian)", _corrupt_checkpoint, r"checkpoint\.pt is unreadable"),
    ("missing checkpoint (est hessian)", lambda t: ["hessian", "trace", str(t / "none")],
     "no checkpoint at"),
    ("pyhessian asked for several batches", lambda t: ["hessian", "trace", str(_trained(t)),
                                                       "--estimator", "pyhessian", "--batches", "2"],
     "--estimator pyhessian takes one batch"),
    ("zero Hessian batches", lambda t: ["hessian", "trace", str(_trained(t)), "--batches", "0"],
     "argument --batches: '0' must be an integer >= 1"),
    ("NaN/inf training loss", _train("--lr", "1e30"),
     r"training loss nan \(non-finite\) at step \d+ .* the run diverged .* lower --lr"),
    ("bad efficiency (est cost)", lambda t: ["cost", "--efficiency", "1.5"],
     r"argument --efficiency: '1.5' must be a finite number in \(0, 1\]"),
    # issue #25: every option checked against its domain, resume that cannot continue exactly
    ("negative gradient clipping", _train("--grad-clip", "-1"),
     r"argument --grad-clip: '-1' must be a finite number > 0 \(or inf\)"),
    ("zero gradient clipping", _train("--grad-clip", "0"),
     r"argument --grad-clip: '0' must be"),
    ("negative weight decay", _train("--weight-decay", "-0.1"),
     "argument --weight-decay: '-0.1' must be a finite number >= 0"),
    ("negative warmup", _train("--warmup-fraction", "-0.1"),
     r"argument --warmup-fraction: '-0.1' must be a finite number in \[0, 1\)"),
    ("NaN warmup", _train("--warmup-fraction", "nan"),
     "argument --warmup-fraction: 'nan' must be"),
    ("final LR ratio above 1", _train("--min-lr-ratio", "2"),
     r"argument --min-lr-ratio: '2' must be a finite number in \[0, 1\]"),
    ("beta2 of 1", _train("--beta2", "1"),
     r"argument --beta2: '1' must be a finite number in \[0, 1\)"),
    ("negative seed", _train("--seed", "-5"),
     "argument --seed: '-5' must be an integer >= 0"),
    ("fractional batch size", _train("--batch-size", "2.5"),
     "argument --batch-size: '2.5' must be an integer >= 1"),
    ("negative threads", _train("--threads", "-1"),
     "argument --threads: '-1' must be an integer >= 1"),
    ("train fraction of 0", _train("--train-fraction", "0"),
     r"argument --train-fraction: '0' must be a finite number in \(0, 1\]"),
    ("CUDA device without CUDA", _train("--device", "cuda"),
     "device='cuda': CUDA is not available on this machine"),
    ("unknown device", _train("--device", "tpu7"),
     "device='tpu7' is not a device: use auto, cpu, cuda, cuda:N or mps"),
    ("method option of the wrong type", _train("--method", "layer-drop", "--method-option",
                                                   "theta=abc"),
     r"layer-drop option theta='abc' must be a finite number in \(0, 1\]"),
    ("method option out of range", _train("--method", "staged", "--method-option",
                                              "grow_at=1"),
     r"staged option grow_at=1 must be a finite number in \(0, 1\)"),
    ("model too large for the memory", lambda t: [*TRAIN, "--model", "gpt2-124m", "--batch-size", "2500",
                                                  "--out", str(t / "out")],
     r"needs about [\d.]+ GiB of memory .* is available on cpu; lower --batch-size"),
    ("YAML number as text", lambda t: _yaml(t, "seed: abc\n"), "seed='abc' must be an integer >= 0"),
    ("YAML boolean as text", lambda t: _yaml(t, "compile: maybe\n"), "compile='maybe' must be true or false"),
    ("YAML stages of the wrong type", lambda t: _yaml(t, "stages: 5\nrates: 1\n"),
     r"stages=5 must be a list of stage boundaries"),
    ("YAML rates of the wrong shape", lambda t: _yaml(t, "stages: [0.5, 1]\nrates: [[1, 1], [1, 1, 1]]\n"),
     r"rates=.* must be one \[p_H, p_M, p_L\] per stage"),
    ("YAML value outside its choices", lambda t: _yaml(t, "lr_schedule: cosin\n"),
     "lr_schedule='cosin'; choose one of"),
    ("resume a directory that holds no run", lambda t: [*TRAIN, "--out", str(_empty(t)), "--resume"],
     "holds no run .* train without --resume"),
    ("resume a run whose checkpoint is gone", lambda t: [*TRAIN, "--steps", "12", "--out",
                                                        str(_without_checkpoint(t)), "--resume"],
     "has no checkpoint.pt .* cannot continue exactly"),
    ("resume an exported HF directory", lambda t: [*TRAIN, "--out", str(_exported(t)), "--resume"],
     "holds no run"),
    ("token id outside the vocabulary (--data)", lambda t: [*TRAIN, "--data", str(_bad_ids(t)), "--out", str(t / "out")],
     r"val\.bin holds token id 9000, outside the vocabulary of \d+"),
    ("meta.json field of the wrong type", lambda t: [*TRAIN, "--data", str(_meta_edited(t, vocab_size="600")),
                                                     "--out", str(t / "out")],
     "vocab_size='600' must be an integer"),
    ("est data prepare into a user's non-empty directory", lambda t: [
        "data", "prepare", _user_corpus(t, "words " * 500), "--tokenizer", str(_tokenizer(t)),
        "--out", str(_users_dir(t))],
     r"is not empty \(tokenizer.json, train.bin\) and holds no preparation of ours"),
    ("est data describe: ids outside the vocabulary", lambda t: [
        "data", "describe", str(_nanogpt(t, [1, 2, 9000])), "--tokenizer", str(_tokenizer(t))],
     r"train\.bin holds token id 9000, outside the tokenizer's vocabulary"),
    ("est data describe: empty val.bin", lambda t: [
        "data", "describe", str(_nanogpt(t, [1, 2, 3], val=[])), "--tokenizer", str(_tokenizer(t))],
     r"val\.bin is 0 bytes: not a whole, non-empty array"),
    ("est hessian on CUDA without CUDA", lambda t: ["hessian", "trace", str(_trained(t)), "--device", "cuda"],
     "device='cuda': CUDA is not available"),
    ("est hessian batch too large for the memory", lambda t: ["hessian", "trace", str(_trained(t)),
                                                              "--batch-size", "100000"],
     r"a Hessian-vector product on batches of 100000 x 64 tokens needs about [\d.]+ GiB"),
    ("est hessian negative tolerance", lambda t: ["hessian", "trace", str(t), "--tol", "-0.1"],
     "argument --tol: '-0.1' must be a finite number > 0"),
    ("est hessian negative seed", lambda t: ["hessian", "eigen", str(t), "--seed", "-1"],
     "argument --seed: '-1' must be an integer >= 0"),
    ("est landscape one point", lambda t: ["landscape", "slice", str(t), "--points", "1"],
     "argument --points: '1' must be an integer >= 2"),
    ("est landscape zero span", lambda t: ["landscape", "slice", str(t), "--span", "0"],
     "argument --span: '0' must be a finite number > 0"),
    ("est landscape negative margin", lambda t: ["landscape", "interpolate", str(t), str(t), "--margin", "-1"],
     "argument --margin: '-1' must be a finite number >= 0"),
    ("est diagnose negative seed", lambda t: ["diagnose", "regularizer", str(t), "--seed", "-2"],
     "argument --seed: '-2' must be an integer >= 0"),
    ("est cost negative C_H : C_M", lambda t: ["cost", "--head-mlp-ratio", "-1"],
     "argument --head-mlp-ratio: '-1' must be a finite number > 0"),
    ("est cost search too large", lambda t: ["cost", "search", "--target-saving", "0.25", "--stage-counts", "12"],
     r"--stage-counts 12 .* schedules to price, more than 5e\+06: use fewer stages"),
    ("est cost search saving of 1.5", lambda t: ["cost", "search", "--target-saving", "1.5"],
     r"argument --target-saving: '1.5' must be a finite number in \[0, 1\)"),
    ("est eval gold out of range", lambda t: ["eval", str(t), "--task", "q=choice:" + _task(t, [
        {"query": "a", "choices": [" b", " c"], "gold": 2}])],
     "gold=2 must be the index of the right choice, an integer from 0 to 1"),
    ("est eval empty task file", lambda t: ["eval", str(t), "--task", "q=choice:" + _task(t, [])],
     "holds no records"),
    # issue #32: crash safety, hostile paths and files, and no tracebacks
    ("duplicate key in a YAML config", lambda t: _yaml(t, "steps: 12\nseed: 1\nsteps: 14\n"),
     "the key 'steps' is given twice"),
    ("YAML config that is not UTF-8", lambda t: [*TRAIN, "--config", _corpus_file(t, "c.yaml", bytes(range(128, 256))),
                                                 "--out", str(t / "out")],
     r"config file .*c\.yaml is not UTF-8 text"),
    ("YAML config with a !!python tag", lambda t: _yaml(t, "steps: !!python/object/apply:os.system ['touch pwned']\n"),
     "is not valid YAML"),
    ("checkpoint config with an unknown field (est hessian)", lambda t: _checkpoint_config_edited(t),
     r"checkpoint .*checkpoint\.pt: unknown fields \['from_the_future'\]"),
    ("checkpoint edited after it was written (est hessian)", lambda t: _flipped_checkpoint(t),
     r"checkpoint .*checkpoint\.pt does not match its digest"),
    ("checkpoint holding a crafted pickle (est hessian)", lambda t: _pickled_checkpoint(t), r"checkpoint\.pt is unreadable"),
    ("HF pytorch_model.bin holding a pickle (est hessian)", lambda t: ["hessian", "trace", str(_hf_pickle(t))],
     r"pytorch_model\.bin holds objects other than tensors"),
    ("damaged HF model.safetensors (est hessian)", lambda t: ["hessian", "trace", str(_hf_damaged(t))],
     r"model\.safetensors is not a readable safetensors file"),
    ("export record without a step (est hessian)", lambda t: ["hessian", "trace", str(_export_record_edited(t))],
     r"est_export\.json has no integer 'step'"),
    ("est hessian eigen --top beyond the parameters", lambda t: ["hessian", "eigen", str(_trained(t)), "--top", "300000"],
     r"--top 300000 asks for more eigenvalues than the model has parameters"),
    ("est hessian eigen --iters beyond the memory", lambda t: ["hessian", "eigen", str(_trained(t)), "--iters", "90000000"],
     r"Lanczos with \d+ steps on [\d,]+ parameters .* needs about [\d.]+ GiB"),
    ("est cost --efficiency-from a run's metrics.csv", lambda t: ["cost", "--efficiency-from", str(_trained(t) / "metrics.csv")],
     r"--efficiency-from .*metrics\.csv has no column efficiency, micro_batch, model, part, variant"),
    ("est diagnose dynamics --stage beyond the runs' stages", lambda t: [
        "diagnose", "dynamics", str(_trained(t)), str(_trained(t, name="run2")), "--stage", "9"],
     r"--stage 9: run .* has 3 stages; give a stage from 1 to 3"),
    ("est compare a method twice", lambda t: ["compare", "--scale", "smoke", "--methods", "est,est", "--out", str(t / "out")],
     "--methods est,est names est more than once"),
    ("est quickstart too short for its stages", lambda t: ["quickstart", "--tokens-per-param", "1e-6", "--out", str(t / "out")],
     "steps are too few for stage boundaries at 2/15, 7/15, 1 of the run"),
    ("est eval task name that is a path", lambda t: ["eval", str(t), "--task", "../../x/victim=choice:" + _task(t, [
        {"query": "a", "choices": [" b", " c"], "gold": 0}])],
     "the task name '../../x/victim' must be a plain identifier"),
    ("est eval task file that is not UTF-8", lambda t: ["eval", str(t), "--task", "q=choice:" + _corpus_file(
        t, "t.jsonl", bytes(range(128, 256)))], r"t\.jsonl is not UTF-8 text"),
    ("corpus file of blank lines", lambda t: [*TRAIN, "--corpus", _corpus_file(t, "nl.txt", b"\n\n\n"),
                                              "--out", str(t / "out")],
     r"the corpus .*nl\.txt is empty"),
    ("WORLD_SIZE that is not a number", lambda t: ({"WORLD_SIZE": "two"}, [*TRAIN, "--out", str(t / "out")]),
     r"environment variable WORLD_SIZE='two' must be an integer >= 1"),
    ("RANK not below WORLD_SIZE", lambda t: ({"WORLD_SIZE": "2", "RANK": "2"}, [*TRAIN, "--out", str(t / "out")]),
     "environment variable RANK=2 must be below WORLD_SIZE=2"),
    ("OMP_NUM_THREADS that is not a number", lambda t: ({"OMP_NUM_THREADS": "abc"}, [*TRAIN, "--out", str(t / "out")]),
     r"environment variable OMP_NUM_THREADS='abc' must be an integer >= 1"),
    ("EST_CACHE_DIR that cannot be created", lambda t: ({"EST_CACHE_DIR": "/proc/est-cache"}, [*TRAIN, "--out", str(t / "out")]),
     r"environment variable EST_CACHE_DIR='/proc/est-cache': cannot create the cache directory"),
    ("est export --to a file", lambda t: ["export", str(_trained(t)), "--to", _corpus_file(t, "afile", b"x")],
     r"--to .*afile is a file; choose a new --to directory"),
    ("new run in a directory holding a run's files", lambda t: [*TRAIN, "--out", str(_with_snapshots(t))],
     r"already holds snapshots, which a new run would overwrite"),
    ("resume through a lock file that is a link", lambda t: [*TRAIN, "--steps", "12", "--out", str(_linked_lock(t)), "--resume"],
     r"\.lock is a symbolic link: est does not write through links"),
    ("metrics.csv row edited mid-file", lambda t: [*TRAIN, "--steps", "12", "--out", str(_metrics_edited(t)), "--resume"],
     r"metrics\.csv, line 4: train_loss='5\.2x1' is not a number"),
    ("prepared train.bin edited after it was described", lambda t: [*TRAIN, "--data", str(_bins_edited(t)), "--out", str(t / "out")],
     r"train\.bin or val\.bin changed since meta\.json was written"),
    ("est data describe --copy-tokenizer over a user's tokenizer.json", lambda t: [
        "data", "describe", str(_nanogpt_with_tokenizer(t)), "--tokenizer", str(_tokenizer(t)), "--copy-tokenizer"],
     r"already holds tokenizer\.json, which differs from the tokenizer's own file"),
    ("est export --to below a file", lambda t: ["export", str(_trained(t)), "--to", str(Path(
        _corpus_file(t, "afile", b"x")) / "hf")],
     r"cannot create the directory .*afile: .*afile is a file; choose another output path"),
    ("est repro --results-dir that is a file", lambda t: ["repro", "table2", "--scale", "smoke", "--no-progress",
                                                          "--results-dir", _corpus_file(t, "afile", b"x")],
     r"cannot create the directory .*afile: .*afile is a file"),
    ("est data prepare of a corpus too small to split", lambda t: [
        "data", "prepare", _user_corpus(t, "words " * 500), "--tokenizer", str(_tokenizer(t)), "--out", str(t / "out")],
     r"too small to split.*the partial files were removed"),
]


def _checkpoint_config_edited(tmp: Path) -> list[str]:
    import torch
    from est_analysis.training.checkpoint import load_checkpoint, save_checkpoint
    run = _trained(tmp)
    state = load_checkpoint(run / "checkpoint.pt")
    save_checkpoint(run / "checkpoint.pt", {**state, "config": {**state["config"], "from_the_future": 1}})
    assert torch.load(run / "checkpoint.pt", weights_only=True)["config"]["from_the_future"] == 1
    return ["hessian", "trace", str(run)]


def _flipped_checkpoint(tmp: Path) -> list[str]:
    from est_analysis.training.checkpoint import load_checkpoint
    run = _trained(tmp)
    raw = load_checkpoint(run / "checkpoint.pt")["model"]["wte.weight"].numpy().tobytes()
    data = bytearray((run / "checkpoint.pt").read_bytes())
    at = data.find(raw) + len(raw) // 2
    data[at:at + 64] = bytes(b ^ 0xFF for b in data[at:at + 64])
    (run / "checkpoint.pt").write_bytes(bytes(data))
    return ["hessian", "trace", str(run)]


class _Pwn:
    """A pickle that would create the file `pwned` when loaded without weights_only."""

    def __reduce__(self):
        return (open, ("pwned", "w"))


def _pickled_checkpoint(tmp: Path) -> list[str]:
    import torch
    run = _trained(tmp)
    torch.save({"model": {}, "step": 1, "config": {}, "x": _Pwn()}, run / "checkpoint.pt")
    return ["hessian", "trace", str(run)]


def _hf_pickle(tmp: Path) -> Path:
    import torch
    hf = _exported(tmp)
    (hf / "model.safetensors").unlink()
    torch.save({"x": _Pwn()}, hf / "pytorch_model.bin")
    return hf


def _hf_damaged(tmp: Path) -> Path:
    hf = _exported(tmp)
    data = bytearray((hf / "model.safetensors").read_bytes())
    data[10:30] = b"x" * 20
    (hf / "model.safetensors").write_bytes(bytes(data))
    return hf


def _export_record_edited(tmp: Path) -> Path:
    import json
    hf = _exported(tmp)
    record = json.loads((hf / "est_export.json").read_text())
    del record["step"]
    (hf / "est_export.json").write_text(json.dumps(record))
    return hf


def _with_snapshots(tmp: Path) -> Path:
    (tmp / "mine" / "snapshots").mkdir(parents=True)
    (tmp / "mine" / "snapshots" / "notes.txt").write_text("mine")
    return tmp / "mine"


def _linked_lock(tmp: Path) -> Path:
    run = _trained(tmp)
    (tmp / "victim.txt").write_text("precious")
    (run / ".lock").unlink(missing_ok=True)  # a clean exit removed it
    (run / ".lock").symlink_to(tmp / "victim.txt")
    return run


def _metrics_edited(tmp: Path) -> Path:
    run = _trained(tmp, "--ckpt-every", "4")
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(lines[3].split(",")[9], "5.2x1", 1)  # train_loss of step 2
    (run / "metrics.csv").write_text("".join(lines))
    return run


def _bins_edited(tmp: Path) -> Path:
    import numpy as np
    nano = _nanogpt(tmp, [1, 2, 3] * 400, [4, 5, 6] * 400)
    assert main(["data", "describe", str(nano), "--tokenizer", str(_tokenizer(tmp))]) == 0
    ids = np.fromfile(nano / "train.bin", dtype=np.uint16)
    ids[100] = 7  # an edit inside the vocabulary: only the digest can tell
    ids.tofile(nano / "train.bin")
    return nano


def _nanogpt_with_tokenizer(tmp: Path) -> Path:
    nano = _nanogpt(tmp, [1, 2, 3] * 400, [4, 5, 6] * 400)
    (nano / "tokenizer.json").write_text('{"mine": true}')
    return nano


def _empty(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _without_checkpoint(tmp: Path) -> Path:
    run = _trained(tmp)
    (run / "checkpoint.pt").unlink()
    return run


def _exported(tmp: Path) -> Path:
    assert main(["export", str(_trained(tmp)), "--to", str(tmp / "hf")]) == 0
    return tmp / "hf"


def _tokenizer(tmp: Path) -> Path:
    return tiny_bpe_tokenizer(tmp)


def _nanogpt(tmp: Path, train: list[int], val: list[int] = (3, 0)) -> Path:
    import numpy as np
    (tmp / "nano").mkdir(exist_ok=True)
    np.array(train, dtype=np.uint16).tofile(tmp / "nano" / "train.bin")
    np.array(val, dtype=np.uint16).tofile(tmp / "nano" / "val.bin")
    return tmp / "nano"


def _bad_ids(tmp: Path) -> Path:
    import numpy as np
    nano = _nanogpt(tmp, [1, 2, 3] * 400, [4, 5, 6] * 400)
    assert main(["data", "describe", str(nano), "--tokenizer", str(_tokenizer(tmp))]) == 0
    ids = np.array([4, 5, 6] * 400, dtype=np.uint16)
    ids[-2] = 9000  # changed after it was described
    ids.tofile(nano / "val.bin")
    import json  # a meta.json written before content digests: the id check finds it
    meta = json.loads((nano / "meta.json").read_text())
    del meta["content_digest"]
    (nano / "meta.json").write_text(json.dumps(meta))
    return nano


def _meta_edited(tmp: Path, **fields) -> Path:
    import json
    nano = _nanogpt(tmp, [1, 2, 3] * 400, [4, 5, 6] * 400)
    assert main(["data", "describe", str(nano), "--tokenizer", str(_tokenizer(tmp))]) == 0
    meta = json.loads((nano / "meta.json").read_text())
    (nano / "meta.json").write_text(json.dumps(meta | fields))
    return nano


def _users_dir(tmp: Path) -> Path:
    (tmp / "u").mkdir()
    (tmp / "u" / "train.bin").write_text("mine")
    (tmp / "u" / "tokenizer.json").write_text("{}")
    return tmp / "u"


def _task(tmp: Path, records: list[dict]) -> str:
    import json
    (tmp / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(tmp / "task.jsonl")


def run_case(build, tmp: Path) -> tuple[int, str, list[str]]:
    """(exit status, last line of stderr, the command) of a case."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()):  # what the set-up prints
        argv = build(tmp)
    env, argv = argv if isinstance(argv, tuple) else ({}, argv)  # (environment variables, argv)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            _environment(env, tmp):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
    return code, err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "", argv


@contextlib.contextmanager
def _environment(env: dict, cwd: Path):
    """A case runs in `cwd` (where a crafted pickle would leave `pwned`) with the environment
    variables `env` set."""
    old, here = {k: os.environ.get(k) for k in env}, os.getcwd()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(here)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def readme_row(what: str, line: str, tmp: Path) -> str:
    """The table's row of a case: temporary paths as $TMP, this machine's free memory as N."""
    line = re.sub(r"[\d.]+ GiB is available", "N GiB is available", line.replace(str(tmp), "$TMP"))
    return f"| {what} | `{line.replace('|', '/')}` |"


def subcommand(argv: list[str]) -> str:
    """`est train`, `est data prepare`, ...: what a case's command runs (the table groups
    the cases by it)."""
    return "est " + " ".join([argv[0]] + [a for a in argv[1:2] if a in SUBCOMMANDS])


SUBCOMMANDS = {"prepare", "describe", "trace", "eigen", "density", "slice", "interpolate",
               "sharpness", "search", "paper", "regularizer", "transitions", "dynamics", "curvature"}


@pytest.mark.parametrize("what, build, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input(tmp_path, what, build, message):
    code, line, _ = run_case(build, tmp_path)
    assert code == 2, line
    assert "error:" in line and "Traceback" not in line
    assert re.search(message, line), line
    assert readme_row(what, line, tmp_path) in TABLE.read_text(), (
        "docs/reliability.md's bad-input table is out of date: `python -m tests.cli.test_bad_input` prints it")
    if what != "NaN/inf training loss":  # a diverged run keeps the metrics of its good steps
        assert not (tmp_path / "out").exists()
    assert not (tmp_path / "pwned").exists()  # no crafted pickle or YAML tag ran


if __name__ == "__main__":
    groups: dict[str, list[str]] = {}
    for what, build, _ in BAD_INPUTS:
        with tempfile.TemporaryDirectory() as tmp:
            _, line, argv = run_case(build, Path(tmp))
            groups.setdefault(subcommand(argv), []).append(readme_row(what, line, Path(tmp)))
    for command, rows in groups.items():
        print(f"\n**`{command}`**\n\n| bad input | what `est` prints (exit status 2) |\n|---|---|")
        print("\n".join(rows))
