"""est_analysis: Evolving Subnetwork Training (Li et al., ICML 2024) and the analysis around it."""

__version__ = "0.1.0"
