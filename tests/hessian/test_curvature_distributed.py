"""Data-parallel curvature products: 2 torchrun processes (gloo), each with one of the two
batches, give the single-process product over both, for every operator."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.hessian.distributed_curvature_probe import products
from tests.hessian.test_curvature_exact import _setup

ROOT = Path(__file__).parents[2]


def test_two_processes_with_one_batch_each_give_the_single_process_products(tmp_path):
    out = tmp_path / "products.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node=2", "-m", "tests.hessian.distributed_curvature_probe",
                             str(out)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    parallel = torch.load(out)
    _, batches = _setup("gpt2")
    single = products(batches)
    assert sorted(parallel) == sorted(single)
    for name, product in single.items():
        torch.testing.assert_close(parallel[name], product, rtol=1e-10, atol=1e-12, msg=name)
