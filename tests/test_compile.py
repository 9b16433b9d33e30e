"""The compiled training step (train.compile, dfpir.models.compiling) equals eager on the CPU
(inductor): losses within fp32's own distance from fp64, the same channel orders, one compile
per block shape and stage, and a resumed compiled run that continues as an eager one."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_config
from test_train import tiny_cfg, weights

from dfpir.config import TrainConfig
from dfpir.models import DFPIR
from dfpir.models.compiling import REGIONS, compile_network, resolve_compile_mode
from dfpir.models.orders import channel_orders
from dfpir.train import Trainer, TrainingInterrupted
from dfpir.train.train_step import TrainStep

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")


def _batches(count: int, dtype: torch.dtype) -> list:
    gen = torch.Generator().manual_seed(3)
    out = []
    for i in range(count):
        clean = torch.rand(2, 3, 16, 16, generator=gen)
        degraded = (clean + 0.1 * torch.randn(2, 3, 16, 16, generator=gen)).clamp(0, 1)
        out.append((degraded.to(dtype), clean.to(dtype), ["derain", "dehaze"][i % 2:][:1] * 2))
    return out


def _losses(model: DFPIR, mode: str, dtype: torch.dtype, steps: int) -> list[float]:
    prompts = torch.randn(2, 512, generator=torch.Generator().manual_seed(5), dtype=dtype)
    rows = {"derain": prompts[0], "dehaze": prompts[1]}
    net = compile_network(model, model, mode, CPU)
    step = TrainStep(model, net, TrainConfig(), rows, CPU)
    step.use(torch.optim.Adam(model.parameters(), lr=1e-3))
    return [float(step(d, c, t)[0]) for d, c, t in _batches(steps, dtype)]


def test_regional_compiled_steps_equal_eager_within_fp32_rounding():
    """20 optimiser steps: the compiled losses stay as close to the fp64 run's as eager fp32's
    do (fp32 rounding is the yardstick, measured, not a number picked on one machine), and the
    DGCPM's channel orders are the same."""
    torch.manual_seed(0)
    base = DFPIR(tiny_config())
    steps = 20
    exact = _losses(copy.deepcopy(base).double(), "none", torch.float64, steps)
    eager = _losses(eager_model := copy.deepcopy(base), "none", torch.float32, steps)
    compiled = _losses(compiled_model := copy.deepcopy(base), "regional", torch.float32, steps)
    fp32_error = max(abs(a - b) for a, b in zip(eager, exact, strict=True))
    compiled_error = max(abs(a - b) for a, b in zip(compiled, exact, strict=True))
    assert compiled_error <= 10 * fp32_error + 1e-6, (compiled_error, fp32_error)
    embeddings = torch.randn(3, 512, generator=torch.Generator().manual_seed(9))
    ours, theirs = channel_orders(compiled_model, embeddings), channel_orders(eager_model,
                                                                               embeddings)
    assert ours.keys() == theirs.keys() and len(ours) == 4
    assert all(torch.equal(ours[block], theirs[block]) for block in ours)


def _block_shapes(trainer_cfg, patches: list[int]) -> int:
    """Distinct (block class, input shape) pairs of one forward per stage: the compiles
    regional compilation may make (one per block shape and stage)."""
    model = DFPIR(trainer_cfg.model)
    seen: set = set()
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.add(
        (type(mod).__name__, tuple(args[0].shape), getattr(mod, "heads", None)
         or id(type(mod))))) for m in model.modules() if isinstance(m, REGIONS)]
    batch = trainer_cfg.train.stages[0].batch_size
    with torch.no_grad():
        for patch in patches:
            model(torch.rand(batch, 3, patch, patch), torch.randn(batch, 512))
    for hook in hooks:
        hook.remove()
    return len(seen)


def test_trainer_compiles_once_per_block_shape_and_stage(tmp_path):
    from torch._dynamo.utils import counters

    stages = ("train.stages=[{name: a, epochs: 1, lr: 0.001, patch_size: 16, batch_size: 2}, "
              "{name: b, epochs: 1, lr: 0.0001, patch_size: 24, batch_size: 2}]")
    cfg = tiny_cfg(stages, "train.compile=regional", "train.val_every=0")
    torch._dynamo.reset()
    before = counters["stats"]["unique_graphs"]
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    graphs = counters["stats"]["unique_graphs"] - before
    bound = _block_shapes(cfg, [16, 24])  # one graph per block shape and stage
    assert 0 < graphs <= bound, (graphs, bound)


def test_a_compiled_run_resumed_equals_the_uninterrupted_compiled_run(tmp_path, monkeypatch):
    """Stop a compiled run after 3 steps and resume it: its weights are those of the same run
    never stopped, bit for bit (as for eager, test_train); switching the mode on resume is a
    resumable change (rounding only)."""
    cfg = tiny_cfg("train.compile=regional")
    full = Trainer(cfg, tmp_path / "full")
    full.run()
    original = Trainer._step
    calls = {"n": 0}

    def stop_after_three(self, *args):
        loss = original(self, *args)
        calls["n"] += 1
        if calls["n"] == 3:
            self.stops.requested = True
        return loss

    monkeypatch.setattr(Trainer, "_step", stop_after_three)
    with pytest.raises(TrainingInterrupted):
        Trainer(cfg, tmp_path / "split").run()
    monkeypatch.setattr(Trainer, "_step", original)
    resumed = Trainer(cfg, tmp_path / "split", resume=True)
    resumed.run()
    after = weights(resumed)
    for key, value in weights(full).items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0, msg=key)
    Trainer(tiny_cfg(), tmp_path / "split", resume=True).close()  # to eager: allowed


def test_modes_resolve():
    assert resolve_compile_mode("auto", torch.device("cpu")) == "none"
    assert resolve_compile_mode("auto", torch.device("cuda")) == "regional"
    assert resolve_compile_mode(True, CPU) == "default"
    with pytest.raises(ValueError, match="train.compile"):
        resolve_compile_mode("fast", CPU)


def test_the_fast_modes_take_the_fused_optimizer():
    from dfpir.train.schedule import StageSchedule

    model = DFPIR(tiny_config())
    for mode, fused in (("regional", True), ("none", None), ("auto", None)):  # auto: none here
        train = TrainConfig(compile=mode)
        schedule = StageSchedule(model, train.stages[0], train, 3, 10)
        assert schedule.optimizer.defaults.get("fused") is fused, mode


def test_fused_adam_equals_the_default_within_fp32_rounding():
    """The fast modes' fused Adam makes the same update as torch's default: after 10 steps its
    parameters are as close to an fp64 Adam's as the default fp32 Adam's are."""
    torch.manual_seed(0)
    start = torch.randn(4096)
    grads = [torch.randn(4096) for _ in range(10)]

    def run(dtype, fused):
        param = torch.nn.Parameter(start.clone().to(dtype))
        adam = torch.optim.Adam([param], lr=1e-3, fused=fused)
        for grad in grads:
            param.grad = grad.to(dtype)
            adam.step()
        return param.detach().double()

    exact = run(torch.float64, None)
    default_error = (run(torch.float32, None) - exact).abs().max().item()
    fused_error = (run(torch.float32, True) - exact).abs().max().item()
    assert fused_error <= 10 * default_error + 1e-7, (fused_error, default_error)


def test_kernel_count_on_the_cpu_leaves_the_terminal_to_the_report():
    """kineto writes its profiler_start/stop lines and a "no GPU" error to stderr; counting
    on a CPU (device_report --quick) keeps them out of the report's output."""
    import subprocess
    import sys

    code = ("import torch; from dfpir.perf.kernel_count import count_kernels; "
            "a = torch.ones(3); print(count_kernels(lambda: a + 1, torch.device('cpu')))")
    env = {k: v for k, v in __import__("os").environ.items() if k != "KINETO_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    assert "profiler_start" not in done.stderr and "USDT" not in done.stderr, done.stderr


def test_kernel_count_sees_the_computing_operators_and_inductor_kernels(monkeypatch):
    # the CPU proxy of a GPU's launches: views and allocations are no kernels; an inductor
    # kernel is one (visible once compiled with the kernel profile on)
    from dfpir.perf.kernel_count import count_kernels, profile_inductor_kernels

    cpu = torch.device("cpu")
    a, b = torch.randn(64), torch.randn(64)
    assert count_kernels(lambda: (a + b).view(8, 8).t().relu(), cpu) == 2  # add, relu
    assert count_kernels(lambda: torch.empty(3).view(3, 1).expand(3, 4), cpu) == 0
    monkeypatch.setattr(torch._inductor.config.cpp, "enable_kernel_profile", False)
    profile_inductor_kernels()  # undone by monkeypatch
    fused = torch.compile(lambda x, y: ((x + y).relu() * 2).sum(), dynamic=False)
    fused(a, b)
    assert count_kernels(lambda: fused(a, b), cpu) == 1  # add, relu, mul and sum: one loop
