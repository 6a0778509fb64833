"""The curvature operators by the names the CLI and diagnostics use (`--operator`)."""

from __future__ import annotations

from est_analysis.hessian.ggn import EmpiricalFisherOperator, GGNOperator, MCFisherOperator
from est_analysis.hessian.operator import CurvatureOperator, HessianOperator
from est_analysis.loss import Batch
from est_analysis.models import Decoder

OPERATORS = {"hessian": HessianOperator, "ggn": GGNOperator, "mc-fisher": MCFisherOperator,
             "empirical-fisher": EmpiricalFisherOperator}
SYMBOLS = {"hessian": "H", "ggn": "G", "mc-fisher": "F_mc", "empirical-fisher": "F_emp"}


def curvature_operator(name: str, model: Decoder, batches: list[Batch], mc_samples: int = 1,
                       seed: int = 0) -> CurvatureOperator:
    """The operator `name` of the mean loss of `model` over `batches`; the Monte-Carlo Fisher
    draws `mc_samples` labels per token with `seed`."""
    if name not in OPERATORS:
        raise ValueError(f"unknown curvature operator {name!r}; choose one of {sorted(OPERATORS)}")
    if name == "mc-fisher":
        return MCFisherOperator(model, batches, samples=mc_samples, seed=seed)
    return OPERATORS[name](model, batches)
