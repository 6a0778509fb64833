"""The training loop shared by every method: AdamW, the paper's LR schedules, gradient
clipping and accumulation, per-step metrics, full-model validation, atomic checkpoints and
exact resume.

Everything random is a function of (seed, step): the subnet (`Subnet.for_step`), the data
windows of each micro-batch (`data.step_batch`), the initialisation (seed only). A resumed
run therefore repeats the uninterrupted run bit for bit on CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from est_analysis.cost.flops import step_flops
from est_analysis.data import TokenData, check_fits, fixed_batches, step_batch
from est_analysis.io import atomic_write_text, check_writable_dir, exclusive_lock
from est_analysis.loss import Batch, batch_loss, evaluate
from est_analysis.methods import SubnetPolicy
from est_analysis.models import Decoder, build_model, get_config
from est_analysis.schedule import Schedule
from est_analysis.seeding import derived_seed
from est_analysis.subnet import Subnet
from est_analysis.training.checkpoint import load_checkpoint, save_checkpoint
from est_analysis.training.compiled import compile_blocks
from est_analysis.training.config import TrainConfig
from est_analysis.training.device import resolve_device
from est_analysis.training.init import check_initialisable, initialise_from
from est_analysis.training.memory import (check_memory, is_out_of_memory, out_of_memory_message,
                                         training_bytes)
from est_analysis.training.distributed import DistContext, init_from_env, shutdown
from est_analysis.training.index_generator import IndexGenerator
from est_analysis.training.lr import lr_at
from est_analysis.training.trackers import open_tracker
from est_analysis.training.metrics import MetricsLog
from est_analysis.training.optimizer import make_optimizer, optimizer_step
from est_analysis.training.precision import autocast, grad_scaler, resolved_precision
from est_analysis.training.run_dir import FreshStart, RunDir
from est_analysis.training.switch import SlopeSwitch
from est_analysis.training.throughput import device_peak_flops, mfu, tokens_per_s

INIT_SALT = 2  # separates the initialisation from the other draws seeded by the run's seed
# settings that the advice after a divergence names: they may change when a run is resumed,
# and each change is recorded in the run's config history (config.yaml, the checkpoint)
ADJUSTABLE_ON_RESUME = ("lr", "warmup_fraction")
# a training loss above this many times ln(vocabulary) (the loss of a uniform prediction, about
# what a new model scores) means the run has diverged, even while it is still finite
DIVERGED_LOSS_RATIO = 2.0


class TrainingError(RuntimeError):
    pass


@dataclass
class Run:
    """What one run trains on (fixed) and where it stands (changes every step)."""

    cfg: TrainConfig
    out: RunDir
    data: TokenData
    policy: SubnetPolicy
    model: Decoder
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # fp16's gradient scaler (disabled otherwise)
    peak_flops: float | None  # the device's peak FLOP/s at the run's precision, if known
    step: int = 0  # steps done
    wall_s: float = 0.0  # training seconds so far (evaluation excluded)
    cpu_s: float = 0.0  # CPU seconds this process spent in those steps (all its threads):
    # unlike wall time, not inflated by other processes sharing the machine
    cum_flops: int = 0
    val_loss: float = math.nan  # the last validation loss
    history: list[dict] = dataclasses.field(default_factory=list)  # settings changed on resume
    checkpoint_step: int | None = None  # step of checkpoint.pt, None before the first
    init_used: dict | None = None  # the weights --init started from (initialise_from)
    switch: SlopeSwitch | None = None  # --switch-slope's adaptive stage switch

    @property
    def inactive_mode(self) -> str:
        return self.policy.inactive_mode or self.cfg.inactive_params




def init_seed(seed: int) -> int:
    """The torch seed the model is initialised with in a run seeded with `seed`."""
    return derived_seed(seed, INIT_SALT)


def eval_steps(config: TrainConfig, boundaries: tuple[int, ...]) -> set[int]:
    """Steps after which the full model is validated: every `eval_every`, the last step of each
    stage and the first step of the next (just before / just after each boundary), the end."""
    steps = {s for s in range(config.steps) if (s + 1) % config.eval_every == 0}
    for b in boundaries[:-1]:
        steps |= {b - 1, b}
    return steps | {0, config.steps - 1}


def train(config: TrainConfig, out_dir: str | Path, resume: bool = False,
          progress: bool = True) -> Path:
    """Train one run into `out_dir` (see `RunDir` for the files it writes). The directory is
    locked for the whole run; a start that fails before its first step leaves nothing behind,
    so the same command can simply be run again."""
    cfg = config.resolved()
    out = RunDir(out_dir)
    if not resume and out.has_run:
        raise TrainingError(f"{out.path} already holds a run: pass --resume to continue it, or "
                            "choose a new --out")
    if resume and not out.can_resume:
        raise TrainingError(f"cannot resume {out.path}: {out.why_no_checkpoint()}")
    check_writable_dir(out.path)
    created = None if resume else FreshStart(out)  # before anything is created
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    context = init_from_env(resolve_device(cfg.device))
    try:
        with _lock(out, context):
            run = None
            try:
                run = _start(cfg, out, resume, context, progress)
                _loop(run, context, progress and context.is_main)
            except BaseException as err:
                if context.is_main and created is not None and (run is None or run.step == 0):
                    created.undo()
                if is_out_of_memory(err):
                    raise TrainingError(out_of_memory_message(cfg, run and run.step, err)) from None
                raise
            if context.is_main:
                _write_summary(run, context)
            context.barrier()
    finally:
        shutdown(context)
    return out.path


def _lock(out: RunDir, context: DistContext) -> AbstractContextManager:
    """The run directory's lock, held by the main process (the other DDP ranks share its run)."""
    if not context.is_main:
        return nullcontext()
    out.path.mkdir(parents=True, exist_ok=True)
    return exclusive_lock(out.lock, f"run directory {out.path}")


def _start(cfg: TrainConfig, out: RunDir, resume: bool, context: DistContext,
           progress: bool) -> Run:
    """The run's data, policy, model and optimizer, restored from the checkpoint on resume."""
    data = cfg.load_data(progress=progress and context.is_main)
    model_config = get_config(cfg.model).with_vocab(data.vocab_size)
    if cfg.seq_len > model_config.block_size:
        raise ValueError(f"seq_len={cfg.seq_len} exceeds the context of {model_config.name} "
                         f"(block_size={model_config.block_size})")
    check_fits(data.train, cfg.batch_size, cfg.seq_len, "training")
    check_fits(data.val, cfg.batch_size, cfg.seq_len, "validation")
    check_memory(training_bytes(model_config, max(1, cfg.batch_size // context.world_size),
                                cfg.seq_len), context.device,
                 f"training {model_config.name} on micro-batches of {cfg.batch_size} x {cfg.seq_len}",
                 "lower --batch-size (and raise --grad-accum to keep the step's tokens) or use "
                 "a smaller --model")
    policy = cfg.policy(model_config)
    state = _resumed_state(out, context) if resume else None
    history = _resumed_history(state, cfg, data.fingerprint, out.checkpoint) if state else []
    start = state["step"] if state else 0
    torch.manual_seed(init_seed(cfg.seed))
    # the model as it was after step start - 1 (a growth step grows it in the loop)
    model = build_model(policy.model_config_at(max(start - 1, 0))).to(context.device)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2),
                               policy.scaled_parameters(model))
    precision = resolved_precision(cfg.precision, context.device)
    peak = cfg.peak_flops or device_peak_flops(context.device, precision)
    run = Run(cfg, out, data, policy, model, optimizer, grad_scaler(precision, context.device), peak,
              history=history, checkpoint_step=start if state else None,
              switch=cfg.stage_switch())
    if state is None and cfg.init is not None:
        check_initialisable(policy.config, policy.model_config_at(0))
        run.init_used = initialise_from(cfg.init, model, data)
    if progress and context.is_main:
        print(run_header(cfg, model), file=sys.stderr)
    if state is not None:
        run.init_used = state.get("init_used")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            run.scaler.load_state_dict(state["scaler"])
        run.step, run.wall_s, run.cum_flops = state["step"], state["wall_s"], state["cum_flops"]
        run.cpu_s = state.get("cpu_s", math.nan)  # unknown for checkpoints written before it
        torch.set_rng_state(state["rng_cpu"])
        if run.switch is not None:  # where it stood, and the stage ends it already moved
            run.switch = SlopeSwitch.from_state(state["switch"])
            policy.schedule = Schedule(tuple(state["boundaries"]), policy.schedule.rates)
    return run


def run_header(cfg: TrainConfig, model: Decoder) -> str:
    """The run's first line: method, model, parameters and the embedding's share of them, with
    a warning when the embedding is most of the model (a pretrained tokenizer's vocabulary on a
    small model trains little besides the embedding)."""
    params, embedding = model.num_params(), model.wte.weight.numel()
    line = (f"{cfg.method}:{cfg.preset} on {model.config.name}, {params:,} parameters "
            f"({embedding / params:.0%} of them the {model.config.vocab_size:,}-token embedding), "
            f"{cfg.steps:,} steps")
    if embedding > params / 2:
        line += (f"; note: most of this model is its embedding"
                 + (f" (the tokenizer {cfg.tokenizer})" if cfg.tokenizer else "")
                 + ": choose a larger --model or a smaller vocabulary to train more than it")
    return line


def _resumed_state(out: RunDir, context: DistContext) -> dict:
    """The newest good checkpoint: the main process repairs the run directory (a damaged or
    missing checkpoint.pt falls back to the one kept before it), then every rank reads it."""
    state = None
    if context.is_main:
        state, note = out.restore_newest_checkpoint()
        if note:
            print(f"note: {note}", file=sys.stderr)
    context.barrier()
    return state if state is not None else load_checkpoint(out.checkpoint)


def _loop(run: Run, context: DistContext, progress: bool) -> None:
    """Train from `run.step` to the end: one `_train_step` per step, then its metrics row,
    snapshot and checkpoint."""
    cfg, schedule = run.cfg, run.policy.schedule
    context.barrier()  # every rank has read the run directory before rank 0 writes to it
    log = _open_log(run, context) if context.is_main else None
    val_batches = fixed_batches(run.data.val, cfg.eval_batches, cfg.batch_size, cfg.seq_len)
    to_eval = eval_steps(cfg, schedule.boundaries)
    _warm_up(run.model, val_batches[0])  # before DDP: its gradient hooks see every backward
    trained = _wrapped(run, context)
    if run.step == 0 and cfg.snapshot_every and context.is_main:  # the initialisation
        _save_snapshot(run, 0)
    bar = tqdm(range(run.step, cfg.steps), initial=run.step, total=cfg.steps, disable=not progress,
               desc=f"{cfg.method}:{cfg.preset}", unit="step", dynamic_ncols=True)
    subnets = IndexGenerator(run.policy, run.step, cfg.steps, device=context.device)
    try:
        for step in bar:
            t0, c0 = time.perf_counter(), time.process_time()
            grown = run.policy.grow(step, run.model, run.optimizer)
            if grown[0] is not run.model:
                run.model, run.optimizer = grown
                trained = _wrapped(run, context)
            subnet = subnets.get(step)
            lr, train_loss = _train_step(run, trained, context, step, subnet)
            step_s = time.perf_counter() - t0
            run.wall_s += step_s
            run.cpu_s += time.process_time() - c0
            flops = cfg.grad_accum * step_flops(run.model.config, subnet, cfg.batch_size, cfg.seq_len)
            run.cum_flops += flops
            run.step = step + 1
            if run.switch and (switched := run.switch.observe(run.policy.schedule, step, train_loss, flops)):
                run.policy.schedule = switched  # the subnets drawn ahead were the old stage's
                subnets.close()
                subnets = IndexGenerator(run.policy, step + 1, cfg.steps, device=context.device)
                to_eval = eval_steps(cfg, switched.boundaries)
            if not context.is_main:
                continue
            row = _metrics_row(run, step, flops, lr, train_loss, step_s)
            if step in to_eval:
                run.val_loss = row["val_loss"] = evaluate(run.model, val_batches,
                                                          run.policy.eval_subnet(step))
            log.write(row)
            bar.set_postfix(stage=row["stage"], loss=f"{train_loss:.3f}", val=f"{run.val_loss:.3f}",
                            tok_s=f"{row['tokens_per_s']:.0f}", refresh=False)
            _save_progress(run)
    finally:
        subnets.close()
    if log is not None:
        log.close()


def _train_step(run: Run, trained: torch.nn.Module, context: DistContext, step: int,
                subnet: Subnet) -> tuple[float, float]:
    """One optimizer step on `subnet` over the step's micro-batches; (lr, mean training loss)."""
    cfg, rows, device = run.cfg, context.rows(run.cfg.batch_size), context.device
    lr = lr_at(step, cfg.steps, cfg.lr, cfg.lr_schedule, round(cfg.warmup_fraction * cfg.steps),
               cfg.min_lr_ratio)
    scales = run.policy.update_scales(step)  # a method may scale some groups' updates
    for group in run.optimizer.param_groups:
        group["lr"] = lr * scales.get(group.get("scaled"), 1.0)
    train_loss = 0.0
    for micro in range(cfg.grad_accum):
        x, y = step_batch(run.data.train, cfg.batch_size, cfg.seq_len, cfg.seed, step, micro)
        if int(torch.maximum(x.max(), y.max())) >= run.model.config.vocab_size:
            raise TrainingError(f"the training data ({run.data.corpus}) holds token id "
                                f"{int(torch.maximum(x.max(), y.max()))} at step {step}, outside "
                                f"the vocabulary of {run.model.config.vocab_size}: it was "
                                "tokenized with another tokenizer; prepare it again")
        last = micro == cfg.grad_accum - 1  # DDP reduces gradients once, after the last
        with trained.no_sync() if context.active and not last else nullcontext():
            with autocast(cfg.precision, device):
                loss = trained(x[rows].to(device), subnet, y[rows].to(device))
            run.scaler.scale(loss / cfg.grad_accum).backward()
        train_loss += loss.item() / cfg.grad_accum
    train_loss = context.mean(train_loss)
    if not math.isfinite(train_loss) or train_loss > DIVERGED_LOSS_RATIO * math.log(run.model.config.vocab_size):
        raise TrainingError(_diverged(run, step, lr, train_loss))
    run.scaler.unscale_(run.optimizer)  # clip the true gradients
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    optimizer_step(run.model, run.optimizer, subnet, run.inactive_mode,
                   step=lambda: run.scaler.step(run.optimizer))
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return lr, train_loss


def _diverged(run: Run, step: int, lr: float, train_loss: float) -> str:
    """Roll checkpoint.pt back to the last one whose weights still gave a sane loss, and say
    how to resume from it. A checkpoint written after step `step - 1` holds the weights that
    gave this loss: it is replaced by the one before it (`RunDir.previous_checkpoint`)."""
    out = run.out
    if run.checkpoint_step == step:
        if out.previous_checkpoint.exists():
            out.previous_checkpoint.replace(out.checkpoint)
        else:
            out.checkpoint.unlink(missing_ok=True)
    size = ("non-finite" if not math.isfinite(train_loss) else
            f"above {DIVERGED_LOSS_RATIO:g} ln(vocabulary) = "
            f"{DIVERGED_LOSS_RATIO * math.log(run.model.config.vocab_size):.3g}")
    what = (f"training loss {train_loss:.4g} ({size}) at step {step} (stage "
            f"{run.policy.schedule.stage_at(step) + 1}, rates {tuple(run.policy.rates(step))}, "
            f"lr {lr:.3g}): the run diverged and stopped")
    if not out.checkpoint.exists():
        again = "train it again" if step == 0 else f"remove {out.path} and train it again"
        return (f"{what}; no checkpoint from before the divergence exists: {again} with a "
                "lower --lr or a longer --warmup-fraction")
    good = load_checkpoint(out.checkpoint)["step"]
    return (f"{what}. The last good checkpoint is {out.checkpoint} (step {good}): resume it "
            f"with a lower learning rate, e.g. `est train --out {out.path} --resume --lr "
            f"{run.cfg.lr / 10:g}` (--lr and --warmup-fraction may change on resume)")


def _metrics_row(run: Run, step: int, flops: int, lr: float, train_loss: float,
                 step_s: float) -> dict:
    cfg, rates = run.cfg, run.policy.rates(step)
    tokens = cfg.grad_accum * cfg.batch_size * cfg.seq_len
    utilisation = mfu(flops, step_s, run.peak_flops)
    return {"step": step, "stage": run.policy.schedule.stage_at(step) + 1, "p_H": rates.p_heads,
            "p_M": rates.p_mlp, "p_L": rates.p_layers, "tokens": (step + 1) * tokens,
            "step_flops": flops, "cum_flops": run.cum_flops, "lr": lr, "train_loss": train_loss,
            "val_loss": "", "step_s": step_s, "wall_s": run.wall_s,
            "tokens_per_s": tokens_per_s(tokens, step_s),
            "mfu": "" if utilisation is None else utilisation}


def _open_log(run: Run, context: DistContext) -> MetricsLog:
    """Write config.yaml and open metrics.csv, keeping the rows before the resumed step."""
    schedule = run.policy.schedule
    run.out.path.mkdir(parents=True, exist_ok=True)
    fields = dataclasses.asdict(run.cfg)
    if run.cfg.data is not None:  # --data replaces the corpus: do not name the default one
        fields["corpus"] = None
    data = run.data
    atomic_write_text(run.out.config, yaml.safe_dump(
        {**fields, "data_used": {"source": data.corpus, "fingerprint": data.fingerprint,
                                 "train_tokens": len(data.train), "val_tokens": len(data.val)},
         "model_config": run.policy.config.to_dict(),
         "boundaries": list(schedule.boundaries), "rates": [list(r) for r in schedule.rates],
         "world_size": context.world_size, "config_history": run.history,
         **({"init_used": run.init_used} if run.init_used else {})}, sort_keys=False))
    tracker = open_tracker(run.cfg.logger, run.out.path, dataclasses.asdict(run.cfg), run.step)
    log = MetricsLog(run.out.metrics, keep_steps_before=run.step, tracker=tracker)
    run.val_loss = log.last_val_loss
    return log


def _wrapped(run: Run, context: DistContext) -> torch.nn.Module:
    """The model as trained: its blocks compiled under `--compile`; under DDP when several
    processes run, told whether layers are skipped (their parameters then get no gradient that
    step)."""
    if run.cfg.compile:
        compile_blocks(run.model)
    if not context.active:
        return run.model
    return DistributedDataParallel(run.model, find_unused_parameters=run.policy.skips_layers)


def _save_progress(run: Run) -> None:
    """A snapshot at stage boundaries and every `snapshot_every` steps; a checkpoint every
    `ckpt_every` steps, at stage boundaries and at the end."""
    cfg, done, boundaries = run.cfg, run.step, run.policy.schedule.boundaries
    if done in boundaries or (cfg.snapshot_every and done % cfg.snapshot_every == 0):
        _save_snapshot(run, done)
    if done % cfg.ckpt_every == 0 or done == cfg.steps or done in boundaries:
        out, last = run.out, done == cfg.steps
        # until the run ends, the checkpoint it replaces is kept (a divergence rolls back to
        # it): checkpoint.pt is complete at every instant (`io.atomic_write`)
        save_checkpoint(out.checkpoint, {
            "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "step": done, "wall_s": run.wall_s, "cpu_s": run.cpu_s, "cum_flops": run.cum_flops,
            "config": dataclasses.asdict(cfg), "config_history": run.history,
            "init_used": run.init_used,
            "boundaries": list(run.policy.schedule.boundaries),
            "switch": run.switch.state_dict() if run.switch else None,
            "data_fingerprint": run.data.fingerprint,
            "rng_cpu": torch.get_rng_state(), "scaler": run.scaler.state_dict()},
            keep_previous=None if last else out.previous_checkpoint)
        run.checkpoint_step = done
        if last:
            out.previous_checkpoint.unlink(missing_ok=True)


def _save_snapshot(run: Run, step: int) -> None:
    """A model-only copy after `step` steps, readable by `load_run` (for diagnostics)."""
    save_checkpoint(run.out.snapshot(step), {"model": run.model.state_dict(), "step": step,
                                             "config": dataclasses.asdict(run.cfg),
                                             "data_fingerprint": run.data.fingerprint})


def _write_summary(run: Run, context: DistContext) -> None:
    """summary.json; throughput over the whole run, as trained by this process and the ones it
    resumed (wall time excludes evaluation)."""
    cfg = run.cfg
    tokens_per_step = cfg.grad_accum * cfg.batch_size * cfg.seq_len
    summary = {"method": cfg.method, "preset": cfg.preset, "scale": cfg.scale, "seed": cfg.seed,
               "steps": cfg.steps, "final_val_loss": run.val_loss, "total_flops": run.cum_flops,
               "train_wall_s": run.wall_s, "train_cpu_s": run.cpu_s, "model": run.policy.config.name,
               "params": run.model.num_params(), "torch": torch.__version__,
               "device": str(context.device), "world_size": context.world_size,
               "precision": resolved_precision(cfg.precision, context.device),
               "tokens_per_s": tokens_per_s(run.step * tokens_per_step, run.wall_s),
               "mfu": mfu(run.cum_flops, run.wall_s, run.peak_flops), "peak_flops": run.peak_flops,
               "boundaries": list(run.policy.schedule.boundaries)}
    atomic_write_text(run.out.summary, json.dumps(summary, indent=2))


def _warm_up(model: Decoder, batch: Batch) -> None:
    """One untimed full-model forward+backward, so that one-off start-up costs (thread pools,
    allocator growth) do not land in the first step's time; it changes no parameter."""
    batch_loss(model, batch).backward()
    model.zero_grad(set_to_none=True)


def _resumed_history(state: dict, cfg: TrainConfig, fingerprint: str, path: Path) -> list[dict]:
    """The run's config history, extended by this resume's changes: only the settings a
    diverged run is advised to change (`ADJUSTABLE_ON_RESUME`) may differ from the checkpoint."""
    differences = TrainConfig.from_dict(state["config"], f"checkpoint {path}").differences(cfg)
    fixed = {k: v for k, v in differences.items() if k not in ADJUSTABLE_ON_RESUME}
    if fixed:
        listed = "; ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in fixed.items())
        raise TrainingError(f"cannot resume from {path}: the config differs ({listed}). "
                            "Resume with the original settings (`est train --out RUN --resume` "
                            "reads them from the run) or start a new --out; only "
                            f"{', '.join(ADJUSTABLE_ON_RESUME)} may change on resume")
    if state.get("data_fingerprint") != fingerprint:
        raise TrainingError(f"cannot resume from {path}: it was trained on a different corpus or "
                            "tokenizer than the one loaded now")
    history = list(state.get("config_history", []))
    if differences:
        history.append({"step": state["step"],
                        "changed": {k: [a, b] for k, (a, b) in differences.items()}})
    return history
