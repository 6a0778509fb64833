"""Reproduction of the paper's tables at a chosen scale: experiment configs
(`paper_repro/configs/*.yaml`), a resumable runner writing `paper_repro/results/<table>.csv` with
provenance, downstream proxies, and the paper's own numbers for side-by-side display."""

from est_analysis.repro.experiments import TABLES, Experiment, RunSpec, load_experiment
from est_analysis.repro.proxies import downstream_proxies
from est_analysis.repro.runner import run_table

__all__ = ["TABLES", "Experiment", "RunSpec", "downstream_proxies", "load_experiment", "run_table"]
