"""The training loop shared by every method: AdamW, the paper's LR schedules, gradient
clipping and accumulation, per-step metrics, full-model validation, atomic checkpoints and
exact resume.

Everything random is a function of (seed, step): the subnet (`Subnet.for_step`), the data
windows of each micro-batch, the initialisation (seed only). A resumed run therefore repeats
the uninterrupted run bit for bit on CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from est_analysis.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint, snapshot_path
from est_analysis.cost import step_flops
from est_analysis.distributed import DistContext, init_from_env, shutdown
from est_analysis.data import check_fits, fixed_batches, load_corpus, random_batch
from est_analysis.index_generator import IndexGenerator
from est_analysis.inactive import INACTIVE_MODES, optimizer_step
from est_analysis.io import atomic_write_text, check_writable_dir
from est_analysis.lr import lr_at
from est_analysis.methods import METHODS, SubnetPolicy, build_policy
from est_analysis.metrics import MetricsLog
from est_analysis.models import Decoder, ModelConfig, build_model, get_config
from est_analysis.recipes import recipe_for
from est_analysis.schedule import Schedule
from est_analysis.subnet import Subnet, derived_seed

DATA_SALT, INIT_SALT = 1, 2
# config fields that may change on resume without changing the numbers
RUNTIME_FIELDS = ("device", "threads", "ckpt_every", "snapshot_every")


class TrainingError(RuntimeError):
    pass


@dataclass
class TrainConfig:
    """One training run. Fields left None take the value of the scale's recipe."""

    preset: str = "est-gpt2"  # sampling-scheduler preset (est_analysis.schedule.PRESETS)
    stages: list[float] | None = None  # custom schedule instead of the preset's: boundaries
    rates: list[list[float]] | None = None  # (fractions or steps) and one (p_H, p_M, p_L) each
    method: str = "est"  # est_analysis.methods.METHODS
    method_options: dict | None = None  # the method's own settings (e.g. {"theta": 0.5})
    scale: str = "smoke"  # smoke | cpu | paper (est_analysis.recipes)
    model: str | None = None
    corpus: str = "shakespeare"
    steps: int | None = None
    seed: int = 0
    batch_size: int | None = None
    grad_accum: int | None = None
    seq_len: int | None = None
    lr: float | None = None
    lr_schedule: str | None = None
    warmup_fraction: float | None = None
    min_lr_ratio: float | None = None
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int | None = None
    eval_batches: int | None = None
    ckpt_every: int | None = None
    snapshot_every: int | None = None  # keep model snapshots every N steps (always: boundaries)
    inactive_params: str = "dense"  # dense | frozen | torch-default (est_analysis.inactive)
    device: str = "auto"
    threads: int | None = None

    def resolved(self) -> "TrainConfig":
        recipe = dataclasses.asdict(recipe_for(self.scale, self.preset))
        filled = {k: recipe[k] if v is None and k in recipe else v
                  for k, v in dataclasses.asdict(self).items()}
        config = TrainConfig(**filled)
        config.validate()
        return config

    def validate(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "seq_len", "eval_every", "eval_batches",
                    "ckpt_every", "snapshot_every")
        for name in positive:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr={self.lr} must be a positive number")
        if (self.stages is None) != (self.rates is None):
            raise ValueError("a custom schedule needs both stages and rates")
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}; choose one of {METHODS}")
        if self.method_options is not None and not isinstance(self.method_options, dict):
            raise ValueError(f"method_options={self.method_options!r} must be a mapping of "
                             "option names to values")
        if self.inactive_params not in INACTIVE_MODES:
            raise ValueError(f"inactive_params={self.inactive_params!r}; choose one of {INACTIVE_MODES}")

    def schedule(self) -> Schedule:
        """The custom schedule if given, else the preset's, scaled to `steps`."""
        if self.stages is not None:
            return Schedule.custom(self.stages, [tuple(r) for r in self.rates], self.steps)
        return Schedule.preset(self.preset, self.steps)

    def policy(self, model_config: ModelConfig) -> SubnetPolicy:
        """The method's policy for this run: EST follows the preset or custom schedule, RAPTR a
        custom schedule if given, the other methods their own stages."""
        custom = self.stages is not None
        schedule = self.schedule() if self.method == "est" or custom else None
        return build_policy(self.method, model_config, self.steps, self.seed, schedule,
                            self.method_options)

    @staticmethod
    def from_yaml(path: str | Path, **overrides: object) -> "TrainConfig":
        """Fields from a YAML mapping, then non-None `overrides` on top."""
        try:
            fields = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise FileNotFoundError(f"config file {path} does not exist") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValueError(f"config file {path} is not valid YAML{where}: "
                             f"{getattr(err, 'problem', None) or err}") from None
        if not isinstance(fields, dict):
            raise ValueError(f"config file {path} must hold a mapping of TrainConfig fields")
        valid = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = set(fields) - valid
        if unknown:
            raise ValueError(f"config file {path}: unknown fields {sorted(unknown)}; "
                             f"valid fields are {sorted(valid)}")
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig(**fields)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(model: Decoder, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings only (GPT-2/nanoGPT convention)."""
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))


@torch.no_grad()
def evaluate(model: Decoder, batches: list[tuple[torch.Tensor, torch.Tensor]],
             device: torch.device, subnet: Subnet | None = None) -> float:
    """Mean next-token cross-entropy over fixed batches of the full model, or of `subnet`."""
    model.eval()
    losses = [F.cross_entropy(model(x.to(device), subnet).flatten(0, 1),
                              y.to(device).flatten()).item() for x, y in batches]
    model.train()
    return sum(losses) / len(losses)


def eval_steps(config: TrainConfig, boundaries: tuple[int, ...]) -> set[int]:
    """Steps after which the full model is validated: every `eval_every`, the last step of each
    stage and the first step of the next (just before / just after each boundary), the end."""
    steps = {s for s in range(config.steps) if (s + 1) % config.eval_every == 0}
    for b in boundaries[:-1]:
        steps |= {b - 1, b}
    return steps | {0, config.steps - 1}


def train(config: TrainConfig, out_dir: str | Path, resume: bool = False,
          progress: bool = True) -> Path:
    """Train one run into `out_dir` (metrics.csv, checkpoint.pt, config.yaml, summary.json)."""
    cfg = config.resolved()
    out = Path(out_dir)
    if not resume and (out / "metrics.csv").exists():
        raise TrainingError(f"{out} already holds a run: pass --resume to continue it, or choose "
                            "a new --out")
    check_writable_dir(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    context = init_from_env(resolve_device(cfg.device))
    try:
        return _train(cfg, out, resume, progress and context.is_main, context)
    finally:
        shutdown(context)


def _train(cfg: TrainConfig, out: Path, resume: bool, progress: bool, context: DistContext) -> Path:
    ckpt_path, metrics_path = out / CHECKPOINT_NAME, out / "metrics.csv"
    device, rows = context.device, context.rows(cfg.batch_size)
    recipe = recipe_for(cfg.scale, cfg.preset)
    data = load_corpus(cfg.corpus, recipe.vocab_size)
    model_config = get_config(cfg.model).with_vocab(data.vocab_size)
    if cfg.seq_len > model_config.block_size:
        raise ValueError(f"seq_len={cfg.seq_len} exceeds the context of {model_config.name} "
                         f"(block_size={model_config.block_size})")
    check_fits(data.train, cfg.batch_size, cfg.seq_len, "training")
    check_fits(data.val, cfg.batch_size, cfg.seq_len, "validation")
    policy = cfg.policy(model_config)
    schedule, inactive_mode = policy.schedule, policy.inactive_mode or cfg.inactive_params

    start, wall, cum_flops, state = 0, 0.0, 0, None
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        _check_compatible(state, cfg, data.fingerprint, ckpt_path)
        start = state["step"]
    torch.manual_seed(derived_seed(cfg.seed, INIT_SALT))
    # the model as it was after step start - 1 (a growth step grows it in the loop)
    model = build_model(policy.model_config_at(max(start - 1, 0))).to(device)
    optimizer = make_optimizer(model, cfg)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, wall, cum_flops = state["step"], state["wall_s"], state["cum_flops"]
        torch.set_rng_state(state["rng_cpu"])
    context.barrier()  # every rank has read the run directory before rank 0 writes to it
    log, val_loss = None, float("nan")
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(
            {**dataclasses.asdict(cfg), "model_config": model_config.to_dict(),
             "boundaries": list(schedule.boundaries), "rates": [list(r) for r in schedule.rates],
             "world_size": context.world_size}, sort_keys=False))
        log = MetricsLog(metrics_path, keep_steps_before=start)
        val_loss = log.last_val_loss
    val_batches = fixed_batches(data.val, cfg.eval_batches, cfg.batch_size, cfg.seq_len)
    to_eval = eval_steps(cfg, schedule.boundaries)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    _warm_up(model, val_batches[0], device)  # before DDP: its gradient hooks see every backward
    # DDP must be told when layers are skipped (their parameters get no gradient that step)
    wrap = lambda m: (DistributedDataParallel(m, find_unused_parameters=policy.skips_layers)  # noqa: E731
                      if context.active else m)
    trained = wrap(model)

    if start == 0 and cfg.snapshot_every and context.is_main:  # the initialisation, for trajectories
        _save_snapshot(out, 0, model, cfg, data.fingerprint)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress,
               desc=f"{cfg.method}:{cfg.preset}", unit="step", dynamic_ncols=True)
    with IndexGenerator(policy, start, cfg.steps, device=device) as index_generator:
        for step in bar:
            t0 = time.perf_counter()
            grown = policy.grow(step, model, optimizer)
            if grown[0] is not model:
                model, optimizer = grown
                trained = wrap(model)
            subnet = index_generator.get(step)
            lr = lr_at(step, cfg.steps, cfg.lr, cfg.lr_schedule,
                       round(cfg.warmup_fraction * cfg.steps), cfg.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            train_loss = 0.0
            for micro in range(cfg.grad_accum):
                generator = torch.Generator().manual_seed(derived_seed(cfg.seed, step, micro, DATA_SALT))
                x, y = random_batch(data.train, cfg.batch_size, cfg.seq_len, generator)
                last = micro == cfg.grad_accum - 1  # DDP reduces gradients once, after the last
                with trained.no_sync() if context.active and not last else nullcontext():
                    with autocast:
                        logits = trained(x[rows].to(device), subnet)
                    loss = F.cross_entropy(logits.float().flatten(0, 1), y[rows].to(device).flatten())
                    (loss / cfg.grad_accum).backward()
                train_loss += loss.item() / cfg.grad_accum
            train_loss = context.mean(train_loss)
            if not math.isfinite(train_loss):
                raise TrainingError(
                    f"non-finite training loss ({train_loss}) at step {step} (stage "
                    f"{schedule.stage_at(step) + 1}, rates {tuple(policy.rates(step))}, lr {lr:.3g}); "
                    f"stopped. The last good checkpoint "
                    f"{'is ' + str(ckpt_path) if ckpt_path.exists() else 'does not exist yet'}; "
                    "lower --lr or raise warmup before resuming")
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer_step(model, optimizer, subnet, inactive_mode)
            optimizer.zero_grad(set_to_none=True)
            step_s = time.perf_counter() - t0
            wall += step_s

            flops = cfg.grad_accum * step_flops(model.config, subnet, cfg.batch_size, cfg.seq_len)
            cum_flops += flops
            if not context.is_main:
                continue
            rates = policy.rates(step)
            row = {"step": step, "stage": schedule.stage_at(step) + 1, "p_H": rates.p_heads,
                   "p_M": rates.p_mlp, "p_L": rates.p_layers,
                   "tokens": (step + 1) * cfg.grad_accum * cfg.batch_size * cfg.seq_len,
                   "step_flops": flops, "cum_flops": cum_flops, "lr": lr,
                   "train_loss": train_loss, "val_loss": "", "step_s": step_s, "wall_s": wall}
            if step in to_eval:
                val_loss = row["val_loss"] = evaluate(model, val_batches, device,
                                                      policy.eval_subnet(step))
            log.write(row)
            bar.set_postfix(stage=row["stage"], loss=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
            done = step + 1
            if done in schedule.boundaries or (cfg.snapshot_every and done % cfg.snapshot_every == 0):
                _save_snapshot(out, done, model, cfg, data.fingerprint)
            if done % cfg.ckpt_every == 0 or done == cfg.steps or done in schedule.boundaries:
                save_checkpoint(ckpt_path, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "step": done, "wall_s": wall, "cum_flops": cum_flops,
                    "config": dataclasses.asdict(cfg), "data_fingerprint": data.fingerprint,
                    "rng_cpu": torch.get_rng_state()})
    if context.is_main:
        log.close()
        summary = {"method": cfg.method, "preset": cfg.preset, "scale": cfg.scale, "seed": cfg.seed,
                   "steps": cfg.steps, "final_val_loss": val_loss, "total_flops": cum_flops,
                   "train_wall_s": wall, "model": model_config.name, "params": model.num_params(),
                   "torch": torch.__version__, "device": str(device),
                   "world_size": context.world_size}
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    context.barrier()
    return out


def _save_snapshot(out: Path, step: int, model: Decoder, cfg: TrainConfig, fingerprint: str) -> None:
    """A model-only copy after `step` steps, readable by `load_run` (for diagnostics)."""
    save_checkpoint(snapshot_path(out, step), {"model": model.state_dict(), "step": step,
                                               "config": dataclasses.asdict(cfg),
                                               "data_fingerprint": fingerprint})


def _warm_up(model: Decoder, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> None:
    """One untimed full-model forward+backward, so that one-off start-up costs (thread pools,
    allocator growth) do not land in the first step's time; it changes no parameter."""
    x, y = batch
    F.cross_entropy(model(x.to(device)).flatten(0, 1), y.to(device).flatten()).backward()
    model.zero_grad(set_to_none=True)


def _check_compatible(state: dict, cfg: TrainConfig, fingerprint: str, path: Path) -> None:
    saved = {k: v for k, v in state["config"].items() if k not in RUNTIME_FIELDS}
    wanted = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RUNTIME_FIELDS}
    diffs = [f"{k}: checkpoint {saved.get(k)!r} vs now {wanted[k]!r}"
             for k in wanted if saved.get(k) != wanted[k]]
    if diffs:
        raise TrainingError(f"cannot resume from {path}: the config differs ({'; '.join(diffs)}). "
                            "Resume with the original settings or start a new --out")
    if state.get("data_fingerprint") != fingerprint:
        raise TrainingError(f"cannot resume from {path}: it was trained on a different corpus or "
                            "tokenizer than the one loaded now")
