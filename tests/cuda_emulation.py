"""symfocal's CUDA kernels run on the CPU: tests/cuda_emulator, built on first use
as a test-only extension (into build/cuda_emulator), behind the same Python
arguments as the library's loss. Needs a C++ compiler and CUDA's headers, not a GPU.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from torch.utils import cpp_extension

from symfocal._sigmoid_checks import check_inputs, check_normalizer
from symfocal._softmax_checks import check_softmax_options, check_softmax_tensors
from symfocal.sigmoid import op_arguments
from symfocal.softmax import softmax_op_arguments

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "tests" / "cuda_emulator" / name for name in ("emulator.cpp", "sigmoid_problem.cpp",
                                                                 "softmax_problem.cpp")]
SOURCES.append(ROOT / "csrc" / "engine" / "views.cpp")


def cuda_include_dir() -> Path | None:
    """A folder with cuda_fp16.h: the toolkit's, or the one torch's CUDA wheels install."""
    candidates = [Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include"]
    candidates.append(Path(torch.__path__[0]).parent / "nvidia" / "cu13" / "include")
    return next((c for c in candidates if (c / "cuda_fp16.h").exists()), None)


@functools.lru_cache(maxsize=None)
def module():
    include = cuda_include_dir()
    if include is None:
        raise RuntimeError("no CUDA headers (cuda_fp16.h) found: set CUDA_HOME to a CUDA toolkit")
    # SYMFOCAL_SANITIZE=1 (make sanitize): built with ASan and UBSan, as the library is, in a folder of its own.
    sanitize = os.environ.get("SYMFOCAL_SANITIZE", "") == "1"
    # (-O1 as the library's sanitized build: the compile under ASan is most of the step's time.)
    sanitizers = ["-O1", "-fsanitize=address,undefined", "-fno-sanitize=vptr", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer", "-g1"] if sanitize else []
    build = ROOT / "build" / ("cuda_emulator-sanitize" if sanitize else "cuda_emulator")
    build.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load(
        name="symfocal_cuda_emulator", sources=[str(s) for s in SOURCES], build_directory=str(build),
        extra_include_paths=[str(ROOT / "csrc"), str(ROOT / "tests" / "cuda_emulator"), str(include)],
        extra_cflags=["-O2", "-std=c++20", "-Wall", "-Wno-unused-parameter", "-DSYMFOCAL_CUDA_VARIANTS",
                      *sanitizers],
        extra_ldflags=sanitizers, verbose=False)


class _EmulatedLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, lengths, mask, weight, normalizer, channel_alpha, channel_pos_weight, *options):
        loss, stats = module().forward(logits, target, lengths, mask, weight, normalizer, channel_alpha,
                                       channel_pos_weight, *options)
        ctx.save_for_backward(logits, target, lengths, mask, weight, channel_alpha, channel_pos_weight, stats)
        ctx.options = options
        return loss

    @staticmethod
    def backward(ctx, grad):
        logits, target, lengths, mask, weight, channel_alpha, channel_pos_weight, stats = ctx.saved_tensors
        grad_logits = module().backward(grad, logits, target, lengths, mask, weight, channel_alpha,
                                        channel_pos_weight, stats, *ctx.options)
        return (grad_logits,) + (None,) * (7 + len(ctx.options))


def sym_focal_loss(logits, target, *, mode="average", alpha=0.25, gamma=2.0, pos_weight=None,
                   label_smoothing=0.0, min_separation=0, lengths=None, mask=None, symmetry_weight=0.0,
                   symmetry_penalty="l1", huber_delta=1.0, reduction="mean", normalize="cells", normalizer=None,
                   weight=None, ignore_index=None, validate=True):
    """symfocal.sym_focal_loss with the CUDA kernels, emulated on CPU tensors."""
    options = dict(mode=mode, alpha=alpha, gamma=gamma, pos_weight=pos_weight, label_smoothing=label_smoothing,
                   min_separation=min_separation, symmetry_weight=symmetry_weight,
                   symmetry_penalty=symmetry_penalty, huber_delta=huber_delta, reduction=reduction,
                   normalize=normalize, ignore_index=ignore_index)
    check_inputs(logits, target, lengths, mask, weight, validate=validate, **options)
    normalizer = check_normalizer(normalizer, logits, reduction=reduction, normalize=normalize, validate=validate)
    return _EmulatedLoss.apply(*op_arguments(logits, target, lengths, mask, normalizer, weight=weight, **options))


class _EmulatedSoftmaxLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, alpha, lengths, mask, weight, normalizer, *options):
        loss, stats = module().softmax_forward(logits, target, alpha, lengths, mask, weight, normalizer, *options)
        ctx.save_for_backward(logits, target, alpha, lengths, mask, weight, stats)
        ctx.options = options
        return loss

    @staticmethod
    def backward(ctx, grad):
        logits, target, alpha, lengths, mask, weight, stats = ctx.saved_tensors
        grad_logits = module().softmax_backward(grad, logits, target, alpha, lengths, mask, weight, stats,
                                                *ctx.options)
        return (grad_logits,) + (None,) * (6 + len(ctx.options))


def sym_softmax_focal_loss(logits, target, *, mode="average", gamma=0.0, alpha=None, label_smoothing=0.0,
                           min_separation=0, lengths=None, mask=None, reduction="mean", normalize="cells",
                           normalizer=None, class_dim=-1, weight=None, ignore_index=None, validate=True):
    """symfocal.sym_softmax_focal_loss with the CUDA kernels, emulated on CPU tensors."""
    options = dict(mode=mode, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing,
                   min_separation=min_separation, reduction=reduction, normalize=normalize, class_dim=class_dim,
                   ignore_index=ignore_index)
    check_softmax_options(**options)
    check_softmax_tensors(logits, target, alpha, lengths, mask, weight, class_dim=class_dim, validate=validate,
                          ignore_index=ignore_index)
    normalizer = check_normalizer(normalizer, logits, reduction=reduction, normalize=normalize, validate=validate,
                                  counts=("cells",))
    return _EmulatedSoftmaxLoss.apply(*softmax_op_arguments(logits, target, lengths, mask, weight, normalizer,
                                                            **options))


def access_counts() -> tuple[int, int]:
    """(wide, single-cell) global accesses of the kernels since the last call."""
    return tuple(module().access_counts())


def variants() -> list[str]:
    """The kernel variants of csrc/sigmoid/cuda/variants.h ("default" first)."""
    return list(module().variants())


def set_variant(name: str) -> None:
    """The variant later emulated launches use."""
    module().set_variant(name)


def set_intrinsic_error(on: bool) -> None:
    """Whether the emulated __expf, __logf and logf carry their documented error (on by default)."""
    module().set_intrinsic_error(on)
