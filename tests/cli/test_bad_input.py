"""The bad-input table: every case exits with status 2 and one clear `error:` line naming the
bad value and the fix, never a traceback, and leaves no output directory behind (cases that
resume an existing run leave it as it was). Run as a script to print the table for the README:

    python tests/cli/test_bad_input.py
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import tempfile
from pathlib import Path

import pytest

from est_analysis.cli.main import main

README = Path(__file__).resolve().parents[2] / "README.md"
TRAIN = ["train", "--scale", "smoke", "--no-progress"]
RATES = ".5,.5,1/1,1,1"


def _user_corpus(tmp: Path, text: str) -> str:
    (tmp / "corpus").mkdir(exist_ok=True)
    (tmp / "corpus" / "a.txt").write_text(text)
    return str(tmp / "corpus")


def _corpus_file(tmp: Path, name: str, data: bytes) -> str:
    (tmp / name).write_bytes(data)
    return str(tmp / name)


def _trained(tmp: Path, *extra: str) -> Path:
    run = tmp / "run"
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
    ("rate <= 0", lambda t: [*TRAIN, "--stages", "0.5,1", "--rates", "0,.5,1/1,1,1", "--out", str(t / "out")],
     r"stage 1: p_H=0.0 is outside \(0, 1\]"),
    ("rate > 1", lambda t: [*TRAIN, "--stages", "0.5,1", "--rates", ".5,.5,1.5/1,1,1", "--out", str(t / "out")],
     r"stage 1: p_L=1.5 is outside \(0, 1\]"),
    ("non-increasing stage boundaries", lambda t: [*TRAIN, "--stages", "0.6,0.3,1", "--rates",
                                                   ".5,.5,.5/.5,.5,1/1,1,1", "--out", str(t / "out")],
     "must be strictly increasing"),
    ("last boundary != total steps", lambda t: [*TRAIN, "--steps", "30", "--stages", "10,20", "--rates", RATES,
                                                "--out", str(t / "out")],
     "the last stage boundary 20 must equal the total steps 30"),
    ("N*p not an integer", lambda t: [*TRAIN, "--stages", "0.5,1", "--rates", ".3,.5,1/1,1,1", "--out", str(t / "out")],
     r"p_H .* rate 0.3 x 4 units = 1.2 is not a whole number of units"),
    ("stages without rates", lambda t: [*TRAIN, "--stages", "0.5,1", "--out", str(t / "out")],
     "stages and rates go together"),
    ("unknown preset", lambda t: [*TRAIN, "--preset", "est-gtp2", "--out", str(t / "out")],
     "argument --preset: invalid choice: 'est-gtp2'"),
    ("unknown model", lambda t: [*TRAIN, "--model", "gpt5", "--out", str(t / "out")],
     "unknown model 'gpt5'; choose one of"),
    ("unknown method", lambda t: [*TRAIN, "--method", "raptr2", "--out", str(t / "out")],
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
    ("corpus file in another encoding", lambda t: [*TRAIN, "--corpus", _corpus_file(
        t, "latin.txt", "Fa\u00e7ade d\u00e9j\u00e0 vu. ".encode("latin-1") * 500), "--out", str(t / "out")],
     r"latin\.txt is not UTF-8 text: \d+ of its \d+ characters are undecodable"),
    ("corpus smaller than one batch", lambda t: [*TRAIN, "--corpus", _user_corpus(t, "tiny text " * 40),
                                                 "--out", str(t / "out")],
     r"split has \d+ tokens, fewer than one batch"),
    ("sequence longer than the context", lambda t: [*TRAIN, "--seq-len", "4096", "--out", str(t / "out")],
     "seq_len=4096 exceeds the context of gpt2-smoke"),
    ("zero steps", lambda t: [*TRAIN, "--steps", "0", "--out", str(t / "out")],
     "steps=0 must be a positive integer"),
    ("negative learning rate", lambda t: [*TRAIN, "--lr", "-1", "--out", str(t / "out")],
     "lr=-1.0 must be a positive number"),
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
     "argument --batches: 0 must be a positive integer"),
    ("NaN/inf training loss", lambda t: [*TRAIN, "--lr", "1e30", "--out", str(t / "out")],
     r"non-finite training loss \(nan\) at step \d+ .* lower --lr"),
    ("bad efficiency (est cost)", lambda t: ["cost", "--efficiency", "1.5"], r"--efficiency 1.5 must be in \(0, 1\]"),
]


def run_case(build, tmp: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(build(tmp))
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
    return code, err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""


def readme_row(what: str, line: str, tmp: Path) -> str:
    return f"| {what} | `{line.replace(str(tmp), '$TMP').replace('|', '/')}` |"


@pytest.mark.parametrize("what, build, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input(tmp_path, what, build, message):
    code, line = run_case(build, tmp_path)
    assert code == 2, line
    assert "error:" in line and "Traceback" not in line
    assert re.search(message, line), line
    assert readme_row(what, line, tmp_path) in README.read_text(), (
        "the README's bad-input table is out of date: `python tests/cli/test_bad_input.py` prints it")
    if what != "NaN/inf training loss":  # a diverged run keeps the metrics of its good steps
        assert not (tmp_path / "out").exists()


if __name__ == "__main__":
    print("| bad input | what `est` prints (exit status 2) |\n|---|---|")
    for what, build, _ in BAD_INPUTS:
        with tempfile.TemporaryDirectory() as tmp:
            _, line = run_case(build, Path(tmp))
        print(readme_row(what, line, Path(tmp)))
