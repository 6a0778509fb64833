import os

import pytest
import torch


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
