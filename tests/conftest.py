import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tokenizers and token arrays go to a per-session cache, never the user's."""
    os.environ["EST_CACHE_DIR"] = str(tmp_path_factory.mktemp("est-cache"))
    torch.set_num_threads(2)
    yield
