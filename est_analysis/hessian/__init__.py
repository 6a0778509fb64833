"""Curvature of the training loss: Hessian, GGN, Monte-Carlo and empirical Fisher operators
with batched products, trace and diagonal estimators with confidence intervals, per-block
results, top eigenvalues, spectral density, and a pyhessian bridge (section 5.2, Table 5 of
the paper)."""

from est_analysis.hessian.curvatures import OPERATORS, curvature_operator
from est_analysis.hessian.ggn import EmpiricalFisherOperator, GGNOperator, MCFisherOperator
from est_analysis.hessian.lanczos import Eigenvalues, SpectralDensity, spectral_density, top_eigenvalues
from est_analysis.hessian.operator import CurvatureOperator, HessianOperator, MatrixOperator, block_name
from est_analysis.hessian.trace import TraceEstimate, hutchinson, hutchpp, xtrace

__all__ = ["OPERATORS", "CurvatureOperator", "Eigenvalues", "EmpiricalFisherOperator", "GGNOperator",
           "HessianOperator", "MCFisherOperator", "MatrixOperator", "SpectralDensity", "TraceEstimate",
           "block_name", "curvature_operator", "hutchinson", "hutchpp", "spectral_density",
           "top_eigenvalues", "xtrace"]
