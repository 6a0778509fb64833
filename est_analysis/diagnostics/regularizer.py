"""The implicit regularizer of subnetwork sampling (section 5.1): EST trains the expected loss
of a random subnet, E_S[L_S(theta)] = L(theta) + R(theta; p), and R is what the sampling adds.

`regularizer_gap` measures R by Monte Carlo: subnet losses minus the full loss on the same
fixed batches, over independently drawn subnets, with a 95 % t-interval. When all layers are
kept, the first-order term g^T delta (g the gradient of the loss with respect to a module's
output, delta defined below) is subtracted from every sample as a control variate: its mean over
subnets is exactly 0 (every unit's rescaled weight has mean 1), so the estimate stays unbiased,
while the draw-to-draw spread it removes is most of the Monte Carlo noise.

`second_order_gap` predicts it from dropout theory. Sampling k of a module's N units without
replacement and rescaling by N/k perturbs the module output by delta = (N/k) sum_{u in S} c_u -
sum_u c_u, where c_u is unit u's contribution (a head's projected output, a neuron's activation
times its output column). delta has mean 0 and, as the estimator of a total under simple random
sampling without replacement, covariance
    Cov = (N/k) (N-k)/(N-1) sum_u (c_u - c_bar)(c_u - c_bar)^T.
To second order, and since different modules are sampled independently,
    R ~= 1/2 sum_m tr(H_m Cov_m),
H_m the Hessian of the loss with respect to module m's output (downstream recomputed). The
trace is estimated without forming Cov: with Rademacher z over units, v = sum_u (z_u - z_bar) c_u
has E[v v^T] = sum_u (c_u - c_bar)(c_u - c_bar)^T, and v^T H v is one second derivative
d^2 L(o + eps v) / d eps^2 (a double backward). All modules of the kind are perturbed at once
with independent z (cross terms vanish in expectation). Layer sampling (p_L) is not covered:
EST does not rescale skipped layers, so its perturbation has a non-zero mean and is not small.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from est_analysis.loss import Batch, batch_loss, evaluate, mean_loss
from est_analysis.models import Decoder
from est_analysis.seeding import seeded_generator
from est_analysis.stats import t_interval
from est_analysis.subnet import Rates, Subnet, check_rates
from est_analysis.training import RunDir, load_run

KINDS = ("heads", "neurons")


@dataclass
class GapEstimate:
    """R(theta; p) = E_S[L_S] - L_full, measured by Monte Carlo."""

    rates: tuple[float, float, float]
    full_loss: float
    gap: float
    stderr: float
    ci_low: float
    ci_high: float
    samples: int
    control_variate: bool  # first-order term subtracted (all layers kept)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SecondOrderPrediction:
    """1/2 sum_m tr(H_m Cov_m) for one module kind at one rate."""

    kind: str
    rate: float
    prediction: float
    stderr: float
    ci_low: float
    ci_high: float
    probes: int

    def to_dict(self) -> dict:
        return asdict(self)


def regularizer_gap(model: Decoder, batches: list[Batch], rates: Rates | tuple[float, float, float],
                    samples: int = 32, seed: int = 0, control_variate: bool = True,
                    progress: bool = False) -> GapEstimate:
    """Monte Carlo estimate of R(theta; p) with `samples` subnets drawn at `rates` (seeded),
    with the first-order control variate when every layer is kept (unless switched off)."""
    if samples < 2:
        raise ValueError(f"samples={samples}: the confidence interval needs at least 2 subnets")
    rates = Rates(*rates)
    check_rates(model.config, rates)
    model.eval()
    full = evaluate(model, batches)
    sampled = [kind for kind, rate in zip(KINDS, rates) if rate < 1.0]
    use_cv = control_variate and rates.p_layers == 1.0 and bool(sampled)
    slopes = _unit_slopes(model, batches, sampled) if use_cv else {}
    gaps = []
    for i in tqdm(range(samples), disable=not progress, desc=f"R at {tuple(rates)}", unit="subnet"):
        subnet = Subnet.sample(model.config, rates, seeded_generator(seed, i))
        gaps.append(evaluate(model, batches, subnet) - full - _first_order(subnet, slopes, rates))
    gap = t_interval(gaps)
    return GapEstimate(tuple(float(r) for r in rates), full, gap.mean, gap.stderr, gap.low,
                       gap.high, samples, use_cv)


def _modules(model: Decoder, kind: str) -> list[torch.nn.Module]:
    return [block.attn if kind == "heads" else block.mlp for block in model.blocks]


@contextmanager
def _unit_offsets(modules: list[torch.nn.Module], weights: list[torch.Tensor]):
    """Add sum_u w_u c_u to each module's output, c_u unit u's contribution (output projection
    of one head or neuron, computed at the module's detached input, without the output bias);
    w has one entry per query head or neuron. The hooks call `forward`, which runs no hooks."""
    def offset(w: torch.Tensor):
        def hook(module, inputs, output):
            added = module.forward(inputs[0].detach(), None, w.to(output.dtype))
            bias = getattr(module.out, "bias", None)
            return output + (added if bias is None else added - bias)
        return hook
    hooks = [m.register_forward_hook(offset(w)) for m, w in zip(modules, weights)]
    try:
        with sdpa_kernel(SDPBackend.MATH):  # double backward through attention
            yield
    finally:
        for hook in hooks:
            hook.remove()


def _unit_slopes(model: Decoder, batches: list[Batch], kinds: list[str]) -> dict[str, torch.Tensor]:
    """a[l, u] = dL/dw_u at w = 0 = g^T c_u: the first-order effect of unit u of layer l."""
    device = next(model.parameters()).device
    slopes = {}
    for kind in kinds:
        modules = _modules(model, kind)
        n = model.config.n_head if kind == "heads" else model.config.d_mlp
        weights = [torch.zeros(n, device=device, requires_grad=True) for _ in modules]
        with _unit_offsets(modules, weights):
            loss = mean_loss(model, batches)
            slopes[kind] = torch.stack(torch.autograd.grad(loss, weights)).cpu().double()
    return slopes


def _first_order(subnet: Subnet, slopes: dict[str, torch.Tensor], rates: Rates) -> float:
    """g^T delta for `subnet`: sum over layers and units of (w_u - 1) a[l, u], w_u = 1/p for a
    kept unit and 0 for a dropped one (every layer active)."""
    total = 0.0
    for kind, kept_per_layer, rate in (("heads", subnet.heads, rates.p_heads),
                                       ("neurons", subnet.neurons, rates.p_mlp)):
        if kind not in slopes:
            continue
        for layer_slopes, kept in zip(slopes[kind], kept_per_layer):
            w = torch.zeros_like(layer_slopes)
            w[kept.cpu()] = 1.0 / rate
            total += float(((w - 1.0) * layer_slopes).sum())
    return total


def _unit_weights(n_units: int, group: int, generator: torch.Generator) -> torch.Tensor:
    """z_u - z_bar over sampling units (KV groups for attention), one entry per head/neuron."""
    z = torch.randint(0, 2, (n_units // group,), generator=generator).double() * 2 - 1
    return (z - z.mean()).repeat_interleave(group)


def second_order_gap(model: Decoder, batches: list[Batch], kind: str, rate: float,
                     probes: int = 16, seed: int = 0, progress: bool = False
                     ) -> SecondOrderPrediction:
    """The dropout-theory prediction of R when only `kind` (heads or neurons) is sampled at
    `rate` in every layer (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {KINDS}")
    if probes < 2:
        raise ValueError(f"probes={probes}: the confidence interval needs at least 2")
    config = model.config
    rates = Rates(rate, 1.0, 1.0) if kind == "heads" else Rates(1.0, rate, 1.0)
    check_rates(config, rates)
    n_units, group = (config.n_kv_head, config.group_size) if kind == "heads" else (config.d_mlp, 1)
    kept = round(n_units * rate)
    factor = 0.0 if kept == n_units else (n_units / kept) * (n_units - kept) / (n_units - 1)
    modules = _modules(model, kind)
    generator = seeded_generator(seed, KINDS.index(kind))
    device = next(model.parameters()).device
    model.eval()
    values = []
    for _ in tqdm(range(probes), disable=not progress, desc=f"second order, {kind}", unit="probe"):
        directions = [_unit_weights(n_units * group, group, generator).to(device) for _ in modules]
        curvature = 0.0
        for x, y in batches:  # a fresh eps per batch: each double backward frees its graph
            eps = torch.zeros((), device=device, requires_grad=True)
            with _unit_offsets(modules, [eps * z for z in directions]):
                (slope,) = torch.autograd.grad(batch_loss(model, (x, y)), eps, create_graph=True)
                (second,) = torch.autograd.grad(slope, eps)
            curvature += second.item() / len(batches)
        values.append(0.5 * factor * curvature)
    prediction = t_interval(values)
    return SecondOrderPrediction(kind, rate, prediction.mean, prediction.stderr, prediction.low,
                                 prediction.high, probes)


def regularizer_table(model: Decoder, batches: list[Batch],
                      rates_list: list[Rates | tuple[float, float, float]], samples: int = 32,
                      probes: int = 16, second_order: bool = True, seed: int = 0,
                      progress: bool = False) -> pd.DataFrame:
    """R by Monte Carlo at each rates (row `sampled="all"`). With `second_order`, also one row
    per module kind the rates sample (that kind alone at its rate: Monte Carlo beside the
    prediction), and on the `all` row the sum of the kinds' predictions, which is the
    second-order prediction of the joint R (kinds are sampled independently, so cross terms
    vanish). Layer sampling has no prediction (see the module docstring): NaN."""
    rows: list[dict] = []
    per_kind: dict[tuple[str, float], tuple[GapEstimate, SecondOrderPrediction]] = {}
    for rates in (Rates(*r) for r in rates_list):
        joint = regularizer_gap(model, batches, rates, samples, seed, progress=progress)
        kind_rows, predictions = [], []
        for kind, rate in (("heads", rates.p_heads), ("neurons", rates.p_mlp)):
            if not second_order or rate == 1.0:
                continue
            if (kind, rate) not in per_kind:  # the same kind at the same rate: measured once
                alone = Rates(rate, 1.0, 1.0) if kind == "heads" else Rates(1.0, rate, 1.0)
                per_kind[kind, rate] = (
                    joint if alone == rates else regularizer_gap(model, batches, alone, samples,
                                                                 seed, progress=progress),
                    second_order_gap(model, batches, kind, rate, probes, seed, progress))
            measured, predicted = per_kind[kind, rate]
            predictions.append(predicted)
            kind_rows.append(_table_row(rates, kind, measured, predicted.prediction,
                                        predicted.stderr))
        covered = bool(predictions) and rates.p_layers == 1.0
        rows.append(_table_row(
            rates, "all", joint, sum(p.prediction for p in predictions) if covered else np.nan,
            math.sqrt(sum(p.stderr ** 2 for p in predictions)) if covered else np.nan))
        rows.extend(kind_rows)
    return pd.DataFrame(rows)


def _table_row(rates: Rates, sampled: str, measured: GapEstimate, predicted: float,
               predicted_stderr: float) -> dict:
    return {"rates": ",".join(f"{r:g}" for r in rates), "sampled": sampled,
            "full_loss": measured.full_loss, "R_mc": measured.gap, "R_mc_stderr": measured.stderr,
            "R_mc_ci_low": measured.ci_low, "R_mc_ci_high": measured.ci_high,
            "R_predicted": predicted, "R_predicted_stderr": predicted_stderr,
            "predicted_over_mc": predicted / measured.gap if measured.gap else np.nan,
            "samples": measured.samples}


def regularizer_trajectory(run_dir: str | Path, rates_list: list[Rates | tuple[float, float, float]],
                           samples: int = 16, batches: int = 4, seed: int = 0,
                           second_order: bool = False, probes: int = 8,
                           progress: bool = False) -> pd.DataFrame:
    """`regularizer_table` at every snapshot of a run (column `step`), on the same validation
    batches, so R can be followed along training."""
    tables = []
    for path in tqdm(RunDir(run_dir).snapshots(), disable=not progress, desc="snapshots", unit="snapshot"):
        run = load_run(path)
        table = regularizer_table(run.model, run.batches("val", batches), rates_list, samples,
                                  probes, second_order, seed)
        tables.append(table.assign(step=run.step))
    return pd.concat(tables, ignore_index=True)
