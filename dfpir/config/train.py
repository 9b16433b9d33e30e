"""The ``train:`` section of an experiment config: the stages (the paper's two), the optimiser,
schedule, precision, logging, checkpointing and the torchrun settings, with their checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from ..models.compiling import CompileMode
from ..schema import check_plain_name

__all__ = ["DIST_TIMEOUT_RANGE_S", "Amp", "Device", "Loss", "LossWeighting", "Scheduler",
           "SchedulerStep", "StageConfig", "TrainConfig", "check_device_name"]

Loss = Literal["l1", "charbonnier", "mse", "psnr"]
LossWeighting = Literal["none", "input"]
Scheduler = Literal["cosine", "constant"]
SchedulerStep = Literal["epoch", "iteration"]
Amp = Literal["none", "bf16", "fp16"]

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(device: str) -> None:
    """Raise ``ValueError`` unless ``device`` is auto, cpu, mps, cuda or cuda:N (whether the
    machine has it is checked when the device is resolved, before anything is written)."""
    if not _DEVICE.match(device):
        raise ValueError(f"expected auto, cpu, cuda or cuda:N, got {device!r}")


Device = Annotated[str, check_device_name]


@dataclass
class StageConfig:
    """One training stage. The paper: 80 epochs at lr 1e-4, patch 128, batch 5, then a
    fine-tune of 5 epochs at lr 1e-5, patch 192, batch 3 starting from the first's weights."""

    name: str = "main"  # the stage's name (checkpoints stage<N>_<name>.pt)
    epochs: int = 80  # epochs of the stage
    lr: float = 1e-4  # Adam's learning rate at the stage's start
    patch_size: int = 128  # training crop side
    batch_size: int = 5  # crops per step (per process unless batch_size_is_global)
    max_iters: int = 0  # stop the stage after this many iterations (0 = run all epochs)
    t_max_epochs: int = 0  # cosine T_max in epochs (0 = this stage's epochs); the release: --epochs

    def __post_init__(self) -> None:
        # messages start with the field's name: the loader then names the key and its source
        check_plain_name("name", self.name)
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {self.patch_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.max_iters < 0:
            raise ValueError(f"max_iters must be >= 0 (0 = all epochs), got {self.max_iters}")


def _paper_stages() -> list[StageConfig]:
    return [
        StageConfig("main", epochs=80, lr=1e-4, patch_size=128, batch_size=5),
        StageConfig("finetune", epochs=5, lr=1e-5, patch_size=192, batch_size=3),
    ]


#: The range of the torchrun timeouts: under a second the ranks may not even meet; past a
#: year is no timeout at all, and far past it torch's timer overflows (an OverflowError).
DIST_TIMEOUT_RANGE_S = (1.0, 365 * 86400.0)


@dataclass
class TrainConfig:
    """Optimisation, schedule, precision, logging and checkpointing."""

    # the stages, run in order (the paper: main, then finetune)
    stages: list[StageConfig] = field(default_factory=_paper_stages)
    loss: Loss = "l1"  # l1 (the paper) | charbonnier | mse | psnr (-PSNR of each crop)
    psnr_loss_floor: float = 1.0e-4  # loss psnr: 10 log10(mse + floor); 1e-4 caps it at 40 dB
    loss_weighting: LossWeighting = "none"  # none (the paper) | input: loss / its input's loss
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam's betas
    weight_decay: float = 0.0  # Adam's weight decay (the release: 0)
    scheduler: Scheduler = "cosine"  # cosine (the release) | constant
    scheduler_step: SchedulerStep = "epoch"  # epoch (the release) | iteration
    eta_min: float = 0.0  # the cosine schedule's floor
    grad_clip: float = 0.0  # max gradient norm (0 = off, the release)
    device: Device = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = False  # bf16 autocast
    tf32: bool = False  # TF32 fp32 matmuls/convolutions on Ampere+ (dfpir.models.precision)
    cudnn_benchmark: bool = False  # cuDNN picks its fastest algorithm per shape (rounding only)
    channels_last: bool = False  # channels-last memory format (speed only)
    # none | auto | regional | default | reduce-overhead | max-autotune (dfpir.models.compiling;
    # auto: regional on CUDA, none on a CPU); true/false: the old form (default/none)
    compile: CompileMode | bool = "none"
    keep_freed_memory: bool = True  # CPU: keep freed memory in the process (see dfpir.perf)
    # iterations between TensorBoard scalars, the loss on the progress bar and the non-finite
    # check (one host-device synchronisation and one all-reduce per log_every steps)
    log_every: int = 20
    progress_every_s: float = 30.0  # seconds between plain progress lines when not on a tty
    # torchrun: timeout of the training collectives (NCCL/gloo; torch's own default is 600 s)
    dist_timeout_s: float = 1800.0
    # torchrun: how long ranks wait for each other outside the steps (validation shards,
    # checkpoint writes, the classifier), on a separate gloo group
    dist_wait_timeout_s: float = 86400.0
    # torchrun, after a stop signal: a rank whose training step (or loss check) has not ended
    # this many seconds later waits for a rank that is gone (kill -9, out of memory): it says
    # so and exits at once, keeping the last latest.pt, within torchrun's 30 s grace (0 = wait
    # until torchrun kills it)
    dist_stop_wait_s: float = 10.0
    val_every: int = 1  # epochs between validations (0 = only at the end of each stage)
    val_max_images: int = 0  # validate on the first N images of each test set (0 = all)
    save_every_epochs: int = 1  # epochs between numbered checkpoints
    save_every_iters: int = 1000  # iterations between 'latest' checkpoints
    sample_images: int = 4  # restored samples written to TensorBoard at each validation
    # stage batch_size: per process (false, as the release under torchrun) or global (true:
    # split over the processes, so several GPUs run the paper's global batch of 5, then 3)
    batch_size_is_global: bool = False
    # The release's checkpoint selection: score the full test sets every select_every_iters
    # iterations (within an epoch) and every select_every_epochs epochs, and save
    # checkpoints/test_selected.pt whenever the mean PSNR is above best - tolerance.
    select_on_test: bool = False
    select_every_iters: int = 2000  # the release: 2000 (three tasks), 3000 (five); 0 = off
    select_every_epochs: int = 1  # 0 = off
    select_tolerance_iters: float = 1e-4  # the release: 1e-4 (three tasks), 1e-5 (five)
    select_tolerance_epochs: float = 0.01  # the release: 0.01 (three tasks), 0.001 (five)

    def __post_init__(self) -> None:
        if not self.stages or not any(s.epochs > 0 for s in self.stages):
            raise ValueError("stages must hold at least one stage with epochs > 0, got "
                             f"{len(self.stages)} stage(s) and no epochs to train")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not (1e-10 <= self.psnr_loss_floor <= 1.0):
            # below 1e-10 (100 dB) a perfect crop's fp32 error rounds to a log of 0: -inf
            raise ValueError("psnr_loss_floor must be a number in [1e-10, 1] (a 100 dB to 0 dB "
                             f"cap on a crop's PSNR), got {self.psnr_loss_floor}")
        if self.loss == "psnr" and self.loss_weighting != "none":
            raise ValueError("loss_weighting must be 'none' with loss 'psnr' (a crop's PSNR "
                             f"is already relative to its own error), got {self.loss_weighting!r}")
        for name in ("weight_decay", "eta_min", "grad_clip"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a number >= 0, got {value}")
        if isinstance(self.compile, bool):
            self.compile = "default" if self.compile else "none"
        if self.log_every < 1:
            raise ValueError(f"log_every must be positive, got {self.log_every}")
        if not (self.progress_every_s > 0 and math.isfinite(self.progress_every_s)):
            raise ValueError("progress_every_s must be a number of seconds > 0, got "
                             f"{self.progress_every_s}")
        low, high = DIST_TIMEOUT_RANGE_S
        for name in ("dist_timeout_s", "dist_wait_timeout_s"):
            value = getattr(self, name)
            if not (low <= value <= high):  # NaN fails too
                raise ValueError(f"{name} must be a number of seconds in [{low:g}, {high:g}] "
                                 f"(1 s to a year; torch's own default is 600), got {value}")
        if not (0 <= self.dist_stop_wait_s <= high):
            raise ValueError("dist_stop_wait_s must be a number of seconds >= 0 (0 = wait for "
                             f"torchrun), got {self.dist_stop_wait_s}")
        for name in ("val_every", "val_max_images", "save_every_epochs", "save_every_iters",
                     "sample_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = off), got {getattr(self, name)}")
