"""The next-token loss at the LM head: mean cross-entropy of `hidden @ weight.T` against the
targets, computed one block of rows at a time (the fused linear cross-entropy of Liger-Kernel
and Cut Cross-Entropy, here in plain PyTorch ops).

No subnet shrinks the (tokens, vocabulary) logits, so their cost is paid in full at every
stage. Unfused, a training step makes four tensors of that size: the logits, `F.cross_entropy`'s
log-softmax, the zero-filled gradient of its nll and the log-softmax's gradient. On a CPU each
is a fresh allocation that glibc maps and the kernel zeroes page by page (at 2048 tokens x
8192 words, 67 MB each). Here each block of rows makes its logits and their softmax (one fused
kernel) in two buffers kept between calls, turns the softmax in place into the block's
gradient, d loss / d z = (softmax(z) - onehot(target)) / tokens, and multiplies it into the
gradients of the hidden states and of the weight. The full logits never exist, and the
exponential is taken once instead of twice. The gradients are made during the forward pass and
scaled by the incoming gradient in backward, so the function is differentiable once (curvature
code uses `token_loss`, which is not fused).

Under autocast the matmuls run in the autocast dtype and the softmax in float32, as autocast
runs `token_loss(F.linear(hidden, weight).float(), targets)`; float64 stays float64.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

# rows per block: at least MIN_ROWS (each block re-reads the weight and its gradient, and
# few rows make slow matmuls), more where the vocabulary is small, up to BLOCK_ELEMENTS logits
# (32 MB in float32). Chosen on the 2-core CPU at vocabularies 8,192 and 50,257
# (benchmarks/head_loss.py, docs/performance.md).
MIN_ROWS = 1024
BLOCK_ELEMENTS = 1 << 23

# (device, dtype, use) -> a flat buffer kept between calls for the blocks' logits and
# probabilities: on a CPU a fresh block costs a page fault per 4 KB at every call (glibc hands
# large blocks back to the kernel), which measured as slow as the softmax itself (14 ms against
# 5 ms for 1024 x 8192). It holds 2 x rows x vocabulary numbers (64 MB at gpt2-cpu's 8,192
# words), one set per thread; `release_workspace()` frees this thread's.
_workspace = threading.local()


def _scratch(use: str, shape: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    buffers = _workspace.__dict__.setdefault("buffers", {})
    key, size = (device, dtype, use), shape[0] * shape[1]
    if key not in buffers or buffers[key].numel() < size:
        buffers[key] = torch.empty(size, device=device, dtype=dtype)
    return buffers[key][:size].view(shape)


def release_workspace() -> None:
    """Free the buffers `linear_cross_entropy` keeps between calls (this thread's)."""
    _workspace.__dict__.pop("buffers", None)


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (B, T, vocab) logits against (B, T) targets."""
    return F.cross_entropy(logits.flatten(0, 1), targets.to(logits.device).flatten())


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                matmul_dtype: torch.dtype) -> torch.Tensor:
        tokens = hidden.size(0)
        rows = min(tokens, max(MIN_ROWS, BLOCK_ELEMENTS // weight.size(0)))
        softmax_dtype = torch.promote_types(matmul_dtype, torch.float32)
        want_hidden, want_weight = ctx.needs_input_grad[:2]
        h_all, w = hidden.to(matmul_dtype), weight.to(matmul_dtype)
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = torch.zeros_like(weight) if want_weight else None
        total = hidden.new_zeros((), dtype=torch.float64)
        block_rows = torch.arange(rows, device=hidden.device)
        logits_buffer = _scratch("logits", (rows, w.size(0)), hidden.device, matmul_dtype)
        probs_buffer = _scratch("probs", (rows, w.size(0)), hidden.device, softmax_dtype)
        for start in range(0, tokens, rows):
            h, t = h_all[start:start + rows], targets[start:start + rows]
            r = block_rows[:len(t)]
            z = torch.mm(h, w.t(), out=logits_buffer[:len(t)])
            top, target_logit = z.amax(1).to(softmax_dtype), z[r, t].to(softmax_dtype)
            p = torch.softmax(z, 1, dtype=softmax_dtype, out=probs_buffer[:len(t)])
            # log-sum-exp = top - log max p, exact where p(target) would underflow: max p >= 1 / vocab
            total += (top - p.amax(1).log() - target_logit).sum(dtype=torch.float64)
            p[r, t] -= 1.0  # tokens * d loss / d z
            g = p.to(matmul_dtype)
            if want_hidden:
                grad_hidden[start:start + rows].copy_(g @ w).mul_(1.0 / tokens)
            if want_weight and g.dtype == grad_weight.dtype:
                grad_weight.addmm_(g.t(), h, alpha=1.0 / tokens)  # in place: no weight-sized temporary
            elif want_weight:
                grad_weight.add_(g.t() @ h, alpha=1.0 / tokens)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return (total / tokens).to(softmax_dtype)

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        if torch.is_grad_enabled():  # create_graph=True: a second derivative is coming
            raise RuntimeError("linear_cross_entropy (a decoder called with targets) is "
                               "differentiable once; for second derivatives (Hessian or GGN "
                               "products) use token_loss(model(inputs), targets)")
        grad_hidden, grad_weight = ctx.saved_tensors
        scaled = [None if g is None else g * grad_loss for g in (grad_hidden, grad_weight)]
        return *scaled, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor,
                         targets: torch.Tensor) -> torch.Tensor:
    """`token_loss(F.linear(hidden, weight).float(), targets)` for (B, T, d) hidden states and
    a (vocab, d) head weight: the same value and gradients to float rounding, computed
    blockwise (module docstring). Differentiable once: create_graph=True raises."""
    device = hidden.device.type
    matmul_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    with torch.autocast(device, enabled=False):
        return _LinearCrossEntropy.apply(hidden.flatten(0, 1), weight,
                                         targets.to(hidden.device).flatten(), matmul_dtype)


def head_output(hidden: torch.Tensor, head: torch.nn.Linear,
                targets: torch.Tensor | None = None) -> torch.Tensor:
    """What a decoder returns from its final hidden states: the logits, or given `targets`
    the mean loss (blockwise, `linear_cross_entropy`, where a gradient is recorded; from the
    logits otherwise)."""
    if targets is None:
        return head(hidden)
    if torch.is_grad_enabled():
        return linear_cross_entropy(hidden, head.weight, targets)
    return token_loss(head(hidden).float(), targets)
