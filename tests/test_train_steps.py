"""The cost of a training step (host-device synchronisations), the progress output, OOM
detection, the device of each rank, and validation shared across ranks."""

from __future__ import annotations

import io

import pytest
import torch
from test_train import tiny_cfg

from dfpir.device import is_out_of_memory
from dfpir.train import Trainer
from dfpir.train.distributed import DistContext, setup
from dfpir.train.progress import StageProgress
from dfpir.train.scoring import validate
from dfpir.train.world_resume import resume_on_world

# every Python-level way to read a tensor back to the host (each a sync on a GPU)
READS = ("item", "__float__", "__int__", "__bool__", "cpu", "tolist", "numpy")


def test_a_step_reads_nothing_back_except_at_each_check(tmp_path, monkeypatch):
    """8 steps, checks every 4 (log_every, also each epoch's end): one read per check and none
    in the steps between. Adam's step counter is a host tensor on a GPU too (not counted)."""
    trainer = Trainer(tiny_cfg("train.log_every=4", "train.val_every=0"), tmp_path)
    counts: list[int] = []
    inside = {"on": False}

    def counting(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            steps = {id(s.get("step")) for s in trainer.schedule.optimizer.state.values()}
            if inside["on"] and id(self) not in steps:
                counts[-1] += 1
            return original(self, *args, **kwargs)
        return read

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    original_batch = Trainer._train_batch

    def batch(self, *args):
        counts.append(0)
        inside["on"] = True
        try:
            return original_batch(self, *args)
        finally:
            inside["on"] = False

    monkeypatch.setattr(Trainer, "_train_batch", batch)
    trainer.run()
    assert counts == [0, 0, 0, 1, 0, 0, 0, 1]


def test_plain_progress_lines_off_a_terminal_are_rare():
    clock = {"t": 0.0}
    stream = io.StringIO()  # not a tty
    progress = StageProgress(1000, 0, "main", every_s=30.0, stream=stream,
                             clock=lambda: clock["t"])
    for step in range(1000):
        clock["t"] += 0.5  # 500 s in all: a line at most every 30 s
        progress.update()
        if step % 20 == 0:
            progress.set_postfix(loss="0.0100")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) <= 500 / 30 + 2 < 100
    assert "\r" not in stream.getvalue()
    assert lines[-1].startswith("main: 1000/1000 it (100%)") and "loss 0.0100" in lines[-1]


def test_out_of_memory_in_every_form():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
    assert is_out_of_memory(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not is_out_of_memory(RuntimeError("size mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_each_rank_uses_the_gpu_of_its_local_rank(monkeypatch):
    """On every node rank r's device is cuda:LOCAL_RANK (a node of 4 patched GPUs)."""
    import dfpir.train.distributed as distributed

    chosen = []
    monkeypatch.setattr(distributed, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for global_rank, local_rank in ((5, 1), (7, 3), (0, 0)):
        monkeypatch.setenv("RANK", str(global_rank))
        monkeypatch.setenv("LOCAL_RANK", str(local_rank))
        ctx = setup("cuda")
        assert ctx.device == torch.device("cuda", local_rank) == chosen[-1]
        assert (ctx.rank, ctx.local_rank) == (global_rank, local_rank)


def test_validation_shared_by_ranks_gives_the_means_of_one_process(tmp_path):
    trainer = Trainer(tiny_cfg("data.builtin.test_images=[coffee, rocket, chelsea]"),
                      tmp_path)
    args = (trainer.model, trainer.test_sets, trainer.bank, torch.device("cpu"))
    whole, _ = validate(*args)
    shard_sums = []
    validate(*args, shard=(1, 2), reduce=lambda sums: shard_sums.append(sums) or sums)
    shards = iter(shard_sums)
    shared, _ = validate(*args, shard=(0, 2), reduce=lambda sums: sums + next(shards))
    for name, metrics in whole.items():
        for key, value in metrics.items():
            # the same float64 sums of at most 3 images in another order: a few ulps
            assert shared[name][key] == pytest.approx(value, rel=1e-14, abs=0), (name, key)
    trainer.close()


def test_resume_on_another_world_goes_on_at_the_same_image():
    change = resume_on_world(3, old_world=4, new_world=2, old_batch=2, new_batch=2)
    assert change.iteration == 6 and len(change.messages) == 2  # 24 images, a batch of 4
    change = resume_on_world(3, old_world=4, new_world=2, old_batch=1, new_batch=2)
    assert change.iteration == 3 and len(change.messages) == 1  # global batch of 4 kept
    change = resume_on_world(1, old_world=2, new_world=3, old_batch=2, new_batch=2)
    assert change.iteration == 0 and "the last 4 are trained on again" in change.messages[-1]


def test_timeouts_and_progress_interval_are_checked():
    from dfpir.config import ConfigError

    for key in ("dist_timeout_s", "dist_wait_timeout_s", "progress_every_s"):
        with pytest.raises(ConfigError, match=key):
            tiny_cfg(f"train.{key}=0")


def test_a_single_process_context_needs_no_group():
    ctx = DistContext()
    assert not ctx.distributed and ctx.wait_group is None
    ctx.barrier()  # a no-op alone


def test_the_commands_of_the_gpu_guide_parse():
    """Every ``dfpir train`` / ``[dfpir] torchrun ... scripts/train.py`` command of
    docs/training_gpu.md uses options that exist (torchrun's and the trainer's parsers)."""
    import re
    import shlex
    from pathlib import Path

    from torch.distributed.run import get_args_parser

    from dfpir.cli.train import build_parser

    text = (Path(__file__).resolve().parents[1] / "docs" / "training_gpu.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()
                if "scripts/train.py" in line or line.startswith("dfpir train")]
    assert len(commands) >= 6
    for command in commands:
        command = command.split("#")[0].rstrip().removesuffix("&")  # "cmd &": in the background
        command = re.sub(r"\$(\w+)", lambda m: "--resume" if m[1] == "RESUME" else "1",
                         command)
        words = shlex.split(command)
        words = words[words.index("srun") + 1:] if "srun" in words else words
        if words[:2] == ["dfpir", "torchrun"]:  # the same arguments as torchrun
            words = words[1:]
        if words[0] == "torchrun":
            launch = get_args_parser().parse_args(words[1:])
            assert launch.training_script == "scripts/train.py"
            args = launch.training_script_args
        else:
            args = words[2:]
        build_parser().parse_args(args)  # exits (fails the test) on an unknown option


def test_validation_scores_a_clean_prediction_on_the_unrestored_input(tmp_path):
    """The blind column during training: a test image the classifier calls clean is left as it
    is (as `restore -d auto` does), not restored with a 'clean' prompt the bank does not hold."""
    from conftest import always_classifier

    trainer = Trainer(tiny_cfg(), tmp_path)
    args = (trainer.model, trainer.test_sets, trainer.bank, torch.device("cpu"))
    clf = always_classifier("clean", [*trainer.bank.names, "clean"])
    means, _ = validate(*args, classifier=clf)
    for metrics in means.values():
        assert metrics["accuracy"] == 0.0
        assert metrics["blind_psnr"] == pytest.approx(metrics["input_psnr"])
    trainer.close()


def test_a_signal_on_one_rank_is_every_ranks_exit_status(tmp_path):
    """The check carries the signal behind a stop request, so a rank that stops because
    another was signalled exits as that one does (143 for SIGTERM) and says where it came
    from."""
    import signal

    from dfpir.train.loss_window import LossWindow
    from dfpir.train.stop_requests import StopRequests

    ctx = DistContext(0, 1, 0, torch.device("cpu"), None)
    result = LossWindow().check(ctx, True, signal.SIGTERM)
    assert result.stop and result.stop_signal == signal.SIGTERM
    assert LossWindow().check(ctx, True).stop_signal is None  # asked by code: no signal
    other = StopRequests(distributed=True)
    other.agree(result.stop, result.stop_signal)
    stopped = other.interrupted(tmp_path / "latest.pt", 7, tmp_path)
    assert stopped.exit_code == 143 and "stopped by SIGTERM (on another rank)" in str(stopped)


def test_after_a_stop_signal_a_step_that_does_not_end_is_given_up():
    # under torchrun: the watching thread calls on_stall once a step has run stall_s past the
    # signal; short steps (the run going on to its agreed stop) and single processes never
    import signal
    import time

    from dfpir.train.stop_requests import StopRequests

    calls: list[tuple[int, float]] = []
    stops = StopRequests(distributed=True, stall_s=0.3,
                         on_stall=lambda signum, waited: calls.append((signum, waited)))
    stops.on_signal(signal.SIGTERM, None)
    for _ in range(8):  # 0.8 s of steps of 0.1 s each: alive
        with stops.step():
            time.sleep(0.1)
    time.sleep(0.3)  # between steps (a save, a loader): not a collective
    assert calls == []
    with stops.step():  # a step held up by a rank that is gone
        time.sleep(1.0)
    assert len(calls) == 1 and calls[0][0] == signal.SIGTERM and calls[0][1] >= 0.3

    alone = StopRequests(distributed=False, stall_s=0.3, on_stall=lambda *a: calls.append(a))
    alone.on_signal(signal.SIGTERM, None)
    with alone.step():
        time.sleep(0.6)
    assert len(calls) == 1


def test_dfpir_torchrun_reads_a_stop_from_the_workers_exit_statuses():
    import signal

    from dfpir.train.torchrun import stopped_by

    assert stopped_by([143]) == signal.SIGTERM and stopped_by([130, 130]) == signal.SIGINT
    assert stopped_by([143, 1]) is None  # one of them failed
    assert stopped_by([143, 130]) is None  # not one stop
    assert stopped_by([-9]) is None and stopped_by([137]) is None  # killed, not stopped
    assert stopped_by([143, -signal.SIGTERM]) == signal.SIGTERM  # torchrun ended the other
    assert stopped_by([-signal.SIGTERM]) is None  # ended before any stop
    assert stopped_by([143, -signal.SIGKILL]) is None
    assert stopped_by([]) is None


def test_a_torchrun_worker_leaving_on_an_error_is_not_ended_by_torchruns_sigterm():
    """A peer gone: this rank's error is on its way to the terminal (and its run directory to
    being freed) when torchrun's SIGTERM comes; the default action would end it silently, with
    run.lock left (seen once in three kill -9 tries). One process keeps the default."""
    import signal

    from dfpir.train.stop_requests import StopRequests

    previous = signal.getsignal(signal.SIGTERM)
    try:
        for distributed, after in ((True, signal.SIG_IGN), (False, previous)):
            with pytest.raises(RuntimeError), \
                    StopRequests(distributed=distributed).handling_signals():
                raise RuntimeError("another process of the torchrun group ended")
            assert signal.getsignal(signal.SIGTERM) == after
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            signal.signal(signal.SIGTERM, previous)
        with StopRequests(distributed=True).handling_signals():
            pass  # ended without a stop or an error: the handler is put back
        assert signal.getsignal(signal.SIGTERM) == previous
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_signal_heard_during_the_checks_all_reduce_is_not_lost(tmp_path):
    """The flag is read, the all-reduce runs (the handler waits for it), the signal lands, then
    the ranks' answer "nobody asked" arrives: the request must survive to the next check (it
    was wiped once; torchrun's repeat of the signal counts as the same request)."""
    import signal

    from dfpir.train.stop_requests import StopRequests

    stops = StopRequests(distributed=True, announce=False)
    asked = stops.requested  # what this rank sends into the all-reduce: False
    stops.on_signal(signal.SIGTERM, None)  # lands while the all-reduce runs
    stops.agree(asked, None)  # every rank's answer: nobody asked (yet)
    assert not stops.stopping and stops.requested
    stops.on_signal(signal.SIGTERM, None)  # torchrun's repeat, within SAME_REQUEST_S
    stops.agree(stops.requested, signal.SIGTERM)  # the next check
    assert stops.stopping
    assert stops.interrupted(tmp_path / "latest.pt", 3, tmp_path).exit_code == 143
