import pytest

from est_analysis.training import TrainConfig, train


@pytest.fixture(scope="package")
def est_run(tmp_path_factory):
    """A smoke-scale EST run (stages end at steps 8, 28, 60) with snapshots every 20 steps."""
    out = tmp_path_factory.mktemp("est-run")
    train(TrainConfig(preset="est-gpt2", scale="smoke", snapshot_every=20), out, progress=False)
    return out


@pytest.fixture(scope="package")
def original_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("original-run")
    train(TrainConfig(preset="original", method="original", scale="smoke"), out, progress=False)
    return out
