"""``dfpir train`` under torchrun with faults injected by environment variables, for
tests/test_train_dist.py (not a test module itself):

- DFPIR_TEST_SLOW_VALIDATION=S: rank 0 sleeps S seconds in every validation;
- DFPIR_TEST_FAIL_AT=N: rank DFPIR_TEST_FAIL_RANK (default 1) fails in global step N;
- DFPIR_TEST_STOP_AT=N: every rank (or only rank DFPIR_TEST_STOP_RANK) asks to stop after
  global step N, as a signal would (a real SIGTERM with DFPIR_TEST_STOP_SIGNAL=1);
- DFPIR_TEST_TERM_IN_CLASSIFIER=1: rank 0 sends torchrun SIGTERM as the classifier's fit starts;
- DFPIR_TEST_KILL_AT=N: rank DFPIR_TEST_KILL_RANK (default 1) is killed (SIGKILL) after N;
- DFPIR_TEST_FREEZE_AT=N: rank 1 writes its pid to DFPIR_TEST_PID_FILE and stops itself
  (SIGSTOP) after global step N: a rank that hangs, holding its connections open.
"""

import os
import signal
import sys
import time

import dfpir.train.validator as validator
from dfpir.cli.train import main
from dfpir.train import NonFiniteLossError, Trainer

RANK = int(os.environ.get("RANK", "0"))


def _slow(validate, seconds):
    def slow(*args, **kwargs):
        if RANK == 0:
            time.sleep(seconds)
        return validate(*args, **kwargs)
    return slow


def _faulty(step, fail_at, stop_at, fail_rank, stop_rank):
    kill_at = int(os.environ.get("DFPIR_TEST_KILL_AT", "0"))
    kill_rank = int(os.environ.get("DFPIR_TEST_KILL_RANK", "1"))
    freeze_at = int(os.environ.get("DFPIR_TEST_FREEZE_AT", "0"))

    def faulty(self, *args):
        number = self.progress.global_step + 1
        if kill_at and number == kill_at + 1 and RANK == kill_rank:
            os.kill(os.getpid(), signal.SIGKILL)
        if freeze_at and number == freeze_at + 1 and RANK == 1:
            with open(os.environ["DFPIR_TEST_PID_FILE"], "w") as pid_file:
                pid_file.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGSTOP)
        if number == fail_at and RANK == fail_rank:
            raise NonFiniteLossError(f"injected failure on rank {RANK} in step {number}")
        loss = step(self, *args)
        if number == stop_at and stop_rank in (-1, RANK):
            if os.environ.get("DFPIR_TEST_STOP_SIGNAL"):  # as SLURM or kill would: a SIGTERM
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                self.stops.requested = True
        return loss
    return faulty


def _term_the_launcher(fit):
    def term_then_fit(*args, **kwargs):
        os.kill(os.getppid(), signal.SIGTERM)  # torchrun's agent, as SLURM's scancel would
        return fit(*args, **kwargs)
    return term_then_fit


if __name__ == "__main__":
    env = os.environ
    if env.get("DFPIR_TEST_TERM_IN_CLASSIFIER") and RANK == 0:
        import dfpir.blind.classifier as classifier
        classifier.fit_classifier = _term_the_launcher(classifier.fit_classifier)
    if "DFPIR_TEST_SLOW_VALIDATION" in env:
        validator.validate = _slow(validator.validate,
                                    float(env["DFPIR_TEST_SLOW_VALIDATION"]))
    Trainer._step = _faulty(Trainer._step, int(env.get("DFPIR_TEST_FAIL_AT", "0")),
                            int(env.get("DFPIR_TEST_STOP_AT", "0")),
                            int(env.get("DFPIR_TEST_FAIL_RANK", "1")),
                            int(env.get("DFPIR_TEST_STOP_RANK", "-1")))
    sys.exit(main())
