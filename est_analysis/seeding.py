"""Seeds that are functions of integers only, e.g. (seed, step): what makes a resumed run and
every process of a multi-process run draw the same subnets and batches."""

from __future__ import annotations

import numpy as np
import torch


def derived_seed(*parts: int) -> int:
    """A 63-bit seed that depends only on `parts`, via numpy's SeedSequence."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def seeded_generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded with `derived_seed(*parts)`."""
    return torch.Generator().manual_seed(derived_seed(*parts))
