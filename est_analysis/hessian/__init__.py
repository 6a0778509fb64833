"""Hessian of the training loss: products, trace estimators with confidence intervals,
per-block traces, top eigenvalues, spectral density, and a pyhessian bridge (section 5.2,
Table 5 of the paper)."""

from est_analysis.hessian.lanczos import Eigenvalues, SpectralDensity, spectral_density, top_eigenvalues
from est_analysis.hessian.operator import HessianOperator, MatrixOperator, block_name
from est_analysis.hessian.trace import TraceEstimate, hutchinson, hutchpp

__all__ = ["Eigenvalues", "HessianOperator", "MatrixOperator", "SpectralDensity", "TraceEstimate",
           "block_name", "hutchinson", "hutchpp", "spectral_density", "top_eigenvalues"]
