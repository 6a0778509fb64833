import pytest
import torch

from est_analysis.models import build_model, get_config
from tests.helpers import perturbed


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(1)
    x = torch.randint(0, 512, (4, 32), generator=generator)
    return x, torch.roll(x, -1, dims=1)


@pytest.fixture(params=["gpt2-smoke", "llama-smoke"])
def config(request):
    return get_config(request.param)


@pytest.fixture
def model(config):
    torch.manual_seed(0)
    return perturbed(build_model(config))
