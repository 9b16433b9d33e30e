"""torchrun with gloo on the CPU: a slow validation, a failing rank, resume across world sizes,
two local nodes. Tiny model, built-in data, a few steps each (faults injected by
tests/torchrun_entry.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_train import ROOT, tiny_cfg

from dfpir.config import save_config

ENTRY = str(Path(__file__).parent / "torchrun_entry.py")
STAGE = "train.stages=[{name: a, epochs: 2, lr: 0.001, patch_size: 16, batch_size: 2}]"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_cfg(tmp_path: Path, *extra: str) -> Path:
    path = tmp_path / "cfg.yaml"
    save_config(tiny_cfg(STAGE, *extra), path)
    return path


@pytest.fixture(autouse=True)
def _temp_folder_of_the_test(tmp_path, monkeypatch):
    """Plain torchrun leaves a torchelastic_* folder in the temp folder: in the test's own."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))


def launch(args: list[str], nproc: int = 2, env: dict | None = None, port: int | None = None,
           nodes: tuple[int, int] | None = None, runner: str = "torchrun") -> subprocess.Popen:
    """``torchrun`` (``runner="dfpir"``: ``dfpir torchrun``; plain python when ``nproc`` is
    0) of the fault-injecting entry."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    launcher = (["-m", "dfpir", "torchrun"] if runner == "dfpir"
                else ["-m", "torch.distributed.run"])
    if nproc == 0:
        cmd = [sys.executable, ENTRY]
    else:
        cmd = [sys.executable, *launcher, "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(port or free_port())]
        if nodes:
            cmd += ["--nnodes", str(nodes[1]), "--node_rank", str(nodes[0])]
        cmd.append(ENTRY)
    return subprocess.Popen(cmd + args, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def latest(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)


def test_a_validation_longer_than_the_collective_timeout_finishes(tmp_path):
    # rank 0 spends 6 s in each validation, twice the training collectives' timeout: the other
    # rank waits on the long-timeout group and the run writes its results
    cfg = write_cfg(tmp_path, "train.dist_timeout_s=3", "train.val_every=1")
    code, err = finish(launch(["--config", str(cfg), "--run-dir", str(tmp_path / "run")],
                              env={"DFPIR_TEST_SLOW_VALIDATION": "6"}))
    assert code == 0, err[-3000:]
    assert "Grad strides do not match" not in err  # no gradient copied into DDP's buckets
    assert err.count("training samples per epoch") == 1  # rank 0 alone says how it goes
    assert (tmp_path / "run" / "final_results.md").read_text().count("builtin_") == 2
    assert latest(tmp_path / "run")["progress"]["global_step"] == 4


def test_a_failing_rank_ends_every_rank_quickly_with_one_error(tmp_path):
    cfg = write_cfg(tmp_path)
    start = time.monotonic()
    code, err = finish(launch(["--config", str(cfg), "--run-dir", str(tmp_path / "run")],
                              env={"DFPIR_TEST_FAIL_AT": "3"}), timeout=90)
    assert time.monotonic() - start < 60
    assert code != 0
    assert err.count("injected failure on rank 1 in step 3") == 1, err[-3000:]
    assert "[rank1]: Traceback" not in err and "[rank0]: Traceback" not in err, err[-3000:]


def test_dfpir_torchrun_passes_on_a_user_error_as_status_2(tmp_path):
    """A bad config under dfpir torchrun: the workers' error line and status 2, not torch's
    ChildFailedError report and 1."""
    cfg = write_cfg(tmp_path)
    code, err = finish(launch(["--config", str(cfg), "--run-dir", str(tmp_path / "run"),
                               "--set", "model.dim=0"], runner="dfpir"), timeout=90)
    assert code == 2, err[-3000:]
    assert err.count("error: model.dim: dim must be positive") == 1, err  # not once a rank
    assert "ChildFailedError" not in err
    assert err.rstrip().splitlines()[-1].startswith("torchrun: the workers stopped on the error")
    assert not (tmp_path / "run").exists()


def test_sigterm_to_torchrun_while_the_classifier_trains_stops_every_rank(tmp_path):
    """Rank 0 trains the classifier while the others wait: torchrun's SIGTERM (SLURM's
    scancel) ends that training at once and every rank exits 143 together, not after the
    classifier or when torchrun kills them 30 s later; --resume trains it again."""
    cfg = write_cfg(tmp_path, "train.val_every=0", "classifier.enabled=true",
                    "classifier.steps=1000000", "classifier.samples_per_task=4")
    start = time.monotonic()
    code, err = finish(launch(["--config", str(cfg), "--run-dir", str(tmp_path / "run")],
                              env={"DFPIR_TEST_TERM_IN_CLASSIFIER": "1"}, runner="dfpir"))
    assert code == 143, err[-3000:]
    assert time.monotonic() - start < 60, err[-3000:]
    assert err.count("stopped: stopped by SIGTERM") == 1, err[-3000:]  # rank 0's line
    assert "workers" in err.rstrip().splitlines()[-1], err[-3000:]
    assert "classifier" not in latest(tmp_path / "run")
    assert not (tmp_path / "run" / "final_results.md").exists()


def test_a_stop_on_one_rank_stops_all_at_the_next_check(tmp_path):
    # rank 1 alone asks to stop after step 1 (checks every 3 steps and at each epoch's end,
    # here step 2): both ranks save step 2 and stop, neither waits for the other
    cfg = write_cfg(tmp_path, "train.log_every=3")
    code, err = finish(launch(["--config", str(cfg), "--run-dir", str(tmp_path / "run")],
                              env={"DFPIR_TEST_STOP_AT": "1", "DFPIR_TEST_STOP_RANK": "1"}))
    assert code == 1 and "global step 2; continue with --resume" in err, err[-3000:]
    assert latest(tmp_path / "run")["progress"]["global_step"] == 2


def test_a_sigterm_to_one_rank_is_named_by_the_others(tmp_path):
    # SLURM or kill signals one worker: both ranks save the same step, and rank 0, which got
    # no signal, says which one stopped the run (torchrun then ends the workers that remain)
    cfg = write_cfg(tmp_path, "train.log_every=3")
    code, err = finish(launch(["--config", str(cfg), "--run-dir", str(tmp_path / "run")],
                              env={"DFPIR_TEST_STOP_AT": "1", "DFPIR_TEST_STOP_RANK": "1",
                                   "DFPIR_TEST_STOP_SIGNAL": "1"}))
    assert code != 0 and "stopped by SIGTERM (on another rank)" in err, err[-3000:]
    assert latest(tmp_path / "run")["progress"]["global_step"] == 2


def test_dfpir_torchrun_exits_143_when_a_worker_stopped_on_sigterm(tmp_path):
    # the same stop as above under dfpir torchrun: torchrun's "failure" report and its exit 1
    # become one line and the exit status of the stop
    cfg = write_cfg(tmp_path, "train.log_every=3")
    code, err = finish(launch(["--config", str(cfg), "--run-dir", str(tmp_path / "run")],
                              env={"DFPIR_TEST_STOP_AT": "1", "DFPIR_TEST_STOP_RANK": "1",
                                   "DFPIR_TEST_STOP_SIGNAL": "1"}, runner="dfpir"))
    assert code == 143, err[-3000:]
    assert "torchrun: the workers stopped on SIGTERM (exit status 143)" in err, err[-3000:]
    assert "Traceback" not in err and "ChildFailedError" not in err, err[-3000:]
    assert err.count("interrupted: saved") == 1  # said by rank 0, the one that saves
    assert latest(tmp_path / "run")["progress"]["global_step"] == 2


def test_dfpir_torchrun_signalled_itself_exits_143_after_its_workers_saved(tmp_path):
    # scancel's path: SIGTERM to the launcher, which passes it on; every rank saves the same
    # step, and the launcher exits 143 with one line instead of a SignalException traceback
    stage = "train.stages=[{name: a, epochs: 400, lr: 0.001, patch_size: 16, batch_size: 2}]"
    path = tmp_path / "cfg.yaml"
    save_config(tiny_cfg(stage, "train.log_every=2", "train.save_every_iters=0"), path)
    run_dir = tmp_path / "run"
    proc = launch(["--config", str(path), "--run-dir", str(run_dir)], runner="dfpir")
    deadline = time.monotonic() + 120
    log = run_dir / "train.log"
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and "stage 'a':" in log.read_text():
            time.sleep(3)  # a few steps into the stage (400 epochs: far from its end)
            break
        time.sleep(0.5)
    assert proc.poll() is None, finish(proc)[1][-3000:]
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 143, err[-3000:]
    assert "torchrun: stopped by SIGTERM, which it passed on to its workers" in err
    assert "Traceback" not in err and "SignalException" not in err, err[-3000:]
    assert "stopped by SIGTERM" in err.replace("torchrun: stopped by SIGTERM", ""), err[-3000:]
    assert latest(run_dir)["progress"]["global_step"] > 0


def test_a_rank_killed_outright_ends_the_others_at_once_with_one_error(tmp_path):
    # kill -9 of rank 1 (torchrun then signals rank 0): rank 0's next collective fails, and
    # it stops with one line (not after torchrun's 30 s, not by looping on failed steps), its
    # run directory unlocked
    cfg = write_cfg(tmp_path, "train.log_every=2")
    start = time.monotonic()
    code, err = finish(launch(["--config", str(cfg), "--run-dir", str(tmp_path / "run")],
                              env={"DFPIR_TEST_KILL_AT": "3"}, runner="dfpir"))
    assert time.monotonic() - start < 25, err[-3000:]
    assert code == 1  # a failure, said in one line instead of torchrun's 20-line report
    assert "rank 1: ended by SIGKILL" in err.splitlines()[-1] and "Root Cause" not in err, err
    assert "error: rank 0 stops: another process of the torchrun group ended" in err, err[-3000:]
    assert "continue with --resume" in err
    assert "Unable to shutdown process" not in err  # torchrun did not have to kill rank 0
    assert "[rank0]: Traceback" not in err
    assert not (tmp_path / "run" / "run.lock").exists()


def test_after_a_stop_signal_a_rank_waiting_for_a_hung_one_gives_up(tmp_path):
    # rank 1 hangs (SIGSTOP: its connections stay open, so the collective never fails, as
    # NCCL's would not), rank 0 gets SIGTERM: dist_stop_wait_s later it says why it cannot
    # save, frees the run directory and exits 143
    cfg = write_cfg(tmp_path, "train.log_every=2", "train.dist_stop_wait_s=2")
    pid_file = tmp_path / "rank1.pid"
    proc = launch(["--config", str(cfg), "--run-dir", str(tmp_path / "run")],
                  env={"DFPIR_TEST_FREEZE_AT": "1", "DFPIR_TEST_PID_FILE": str(pid_file),
                       "DFPIR_TEST_STOP_AT": "1", "DFPIR_TEST_STOP_RANK": "0",
                       "DFPIR_TEST_STOP_SIGNAL": "1"}, runner="dfpir")
    try:
        deadline = time.monotonic() + 60
        lock = tmp_path / "run" / "run.lock"
        while time.monotonic() < deadline and (not pid_file.is_file() or lock.exists()):
            time.sleep(0.2)
        assert pid_file.is_file() and not lock.exists()
    finally:
        if pid_file.is_file():  # the hung rank, which torchrun could only end in 30 s
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    code, err = finish(proc)
    assert ("error: rank 0: SIGTERM came 2 s ago and this rank's training step has not "
            "ended: it waits in a collective for a rank that is gone") in err, err[-3000:]
    assert "Stopping without saving" in err and "continue with --resume" in err
    # what the signal's first line promised was conditional: the save needs every rank
    assert "SIGTERM: saving latest.pt at the next step boundary (every rank must reach it)" in err


def test_resume_from_two_processes_on_one_then_on_two(tmp_path):
    cfg, run_dir = write_cfg(tmp_path), tmp_path / "run"
    # 8 images: 2 iterations per epoch on 2 ranks, 4 on 1; stop after global step 1
    code, err = finish(launch(["--config", str(cfg), "--run-dir", str(run_dir)],
                              env={"DFPIR_TEST_STOP_AT": "1"}))
    assert code == 1 and "continue with --resume" in err, err[-3000:]
    state = latest(run_dir)
    assert (state["world_size"], state["progress"]["iteration"]) == (2, 1)

    # one process: 4 images were trained on, so it goes on at its iteration 2 of 4
    code, err = finish(launch(["--resume", "--run-dir", str(run_dir)], nproc=0,
                              env={"DFPIR_TEST_STOP_AT": "2"}))
    assert code == 1, err[-3000:]
    assert "resumed a checkpoint of 2 process(es) on 1" in err
    assert "global batch changes from 2 x 2 = 4 to 1 x 2 = 2" in err
    state = latest(run_dir)
    assert state["world_size"] == 1
    assert (state["progress"]["epoch"], state["progress"]["iteration"]) == (0, 3)

    # two again: 6 images of the epoch are 1.5 global batches of 4, so 2 images are repeated
    code, err = finish(launch(["--resume", "--run-dir", str(run_dir)]))
    assert code == 0, err[-3000:]
    assert "the last 2 are trained on again" in err
    state = latest(run_dir)
    assert state["world_size"] == 2 and state["progress"]["stage"] == 1
    # epoch 1 from iteration 1 of 2, then epoch 2: global steps 2 + 1 + 2
    assert state["progress"]["global_step"] == 5
    assert (run_dir / "final_results.md").is_file()

    # and once more: nothing to resume, said once (not once a rank)
    proc = launch(["--resume", "--run-dir", str(run_dir)], runner="dfpir")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.count("had finished") == 1, (out, err[-3000:])


def test_two_local_nodes(tmp_path):
    cfg, run_dir, port = write_cfg(tmp_path), tmp_path / "run", free_port()
    args = ["--config", str(cfg), "--run-dir", str(run_dir)]
    nodes = [launch(args, nproc=1, port=port, nodes=(rank, 2)) for rank in (0, 1)]
    for proc in nodes:
        code, err = finish(proc)
        assert code == 0, err[-3000:]
    state = latest(run_dir)
    assert state["world_size"] == 2 and state["progress"]["global_step"] == 4
    assert (run_dir / "final_results.md").read_text().count("builtin_") == 2
