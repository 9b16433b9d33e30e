"""What the device report measures and how long each section may take."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The report's sections, in the order they run (the cheap, decisive checks first).
SECTIONS = ("precision", "throughput", "training", "inference")


#: The throughput modes: (name, bf16, channels_last, compile).
MODES: list[tuple[str, bool, bool, bool]] = [
    ("fp32", False, False, False),
    ("bf16", True, False, False),
    ("bf16+channels_last", True, True, False),
    ("bf16+compile", True, False, True),
]


@dataclass
class ReportSettings:
    """What the report measures and how long each section may take (seconds)."""

    device: str = "auto"
    quick: bool = False
    model: dict = field(default_factory=dict)  # DFPIRConfig overrides (quick: a tiny model)
    size: int = 128
    batches: list[int] = field(default_factory=lambda: [8, 32])
    modes: list[str] = field(default_factory=lambda: [m[0] for m in MODES])
    bench_iters: int = 5
    bench_warmup: int = 2
    bench_budget_s: float = 120.0
    train_iters: int = 300
    train_warmup: int = 20  # iterations left out of the rate (workers starting, autotuning)
    train_run_budget_s: float = 30.0  # per training run, after its warm-up (compile included)
    train_budget_s: float = 280.0  # the compiled modes pay their compile inside
    train_images: int = 12  # generated pairs per family
    image_scale: float = 1.0  # generated image sizes relative to the real sets
    num_workers: int = 8
    infer_sizes: list[tuple[int, int]] = field(default_factory=lambda: [(720, 1280),
                                                                        (3000, 4000)])
    tile: int = 512
    infer_budget_s: float = 70.0
    max_batch_cap: int = 512
    threads: int = 0  # torch CPU threads during the report (0: leave as is)
    compile_check: bool = True  # time torch.compile across the stages' crops
    # train.compile modes timed in the training section (after the eager runs, budget allowing)
    train_compile_modes: list[str] = field(default_factory=lambda: ["regional",
                                                                    "reduce-overhead"])

    def scale_budgets(self, factor: float) -> None:
        """Multiply every section's time budget by ``factor``."""
        for name in ("bench_budget_s", "train_run_budget_s", "train_budget_s", "infer_budget_s"):
            setattr(self, name, getattr(self, name) * factor)

    @classmethod
    def for_quick(cls, device: str = "cpu") -> ReportSettings:
        """Tiny everything: runs on a CPU in seconds. The budgets are only a safety net here
        (a busy machine must not turn the smoke test's rows into skips)."""
        return cls(
            device=device, quick=True,
            model={"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1,
                   "heads": [1, 1, 2, 2]},
            size=32, batches=[2], modes=[m[0] for m in MODES],
            bench_iters=1, bench_warmup=1, bench_budget_s=300.0, train_iters=3, train_warmup=1,
            train_run_budget_s=300.0, train_budget_s=300.0, train_images=2, image_scale=0.15,
            num_workers=0, infer_sizes=[(40, 64), (48, 80)], tile=32, infer_budget_s=300.0,
            max_batch_cap=4, threads=1,
        )

