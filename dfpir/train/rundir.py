"""The run directory: its lock, the files the trainer owns, and what ``--resume`` may change.

One process at a time writes a run directory: ``run.lock`` holds the owner's pid, host and start
time, created atomically (a hard link of a complete file, so it is never seen half written). A
lock whose pid is dead on this host is stale and taken over; one from another host is reported
with the path to delete when that process is gone.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .errors import ResumeConfigError, RunLockedError

LOCK_NAME = "run.lock"
CHANGES_NAME = "config_changes.yaml"

#: Config keys a resumed run may change without ``--resume-with-changes``: where data is read
#: from and how fast, how often things are saved and logged, on which device. None of them
#: changes what the run computes.
RESUMABLE_KEYS = (
    "output_dir",
    "name",
    "data.data_root",
    "data.num_workers",
    "data.cache_dir",
    "train.device",
    "train.keep_freed_memory",
    "train.compile",  # a speed mode: rounding only
    "train.save_every_epochs",
    "train.save_every_iters",
    "train.log_every",
    "train.sample_images",
    "eval.device",
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunLock:
    """``run.lock`` in a run directory, held from ``acquire`` to ``release``."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.held = False
        self.created: list[Path] = []  # the folders acquire made, the run directory first

    def _owner(self) -> dict[str, Any] | None:
        try:
            owner = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return owner if isinstance(owner, dict) else {}

    def acquire(self) -> None:
        """Take the lock (creating the run directory) or raise ``RunLockedError`` naming the
        holder. A stale lock (its pid dead on this host) is replaced."""
        self.created = [p for p in (self.path.parent, *self.path.parent.parents)
                        if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        mine = {"pid": os.getpid(), "host": host,
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds")}
        fd, tmp = tempfile.mkstemp(prefix=f".{LOCK_NAME}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(mine, f)
            for _ in range(3):
                try:
                    os.link(tmp, self.path)  # atomic: fails if the lock exists
                    self.held = True
                    return
                except FileExistsError:
                    pass
                owner = self._owner()
                if owner is None:
                    continue  # released meanwhile: try again
                pid, owner_host = owner.get("pid"), owner.get("host")
                if owner_host == host and isinstance(pid, int) and not _pid_alive(pid):
                    self._take_over_stale(owner)
                    continue
                who = (f"process {pid} on {owner_host} (since {owner.get('started', '?')})"
                       if pid is not None else "an unreadable lock")
                raise RunLockedError(
                    f"{self.path.parent} is in use by {who}: {self.path} is its lock. Wait for "
                    f"it to finish or stop it; if that process no longer exists, delete "
                    f"{self.path}")
            raise RunLockedError(f"could not take the lock {self.path} (it keeps changing)")
        finally:
            os.remove(tmp)

    def _take_over_stale(self, owner: dict) -> None:
        # rename first, so that of two processes taking over at once only one removes it
        aside = self.path.with_name(f".{LOCK_NAME}.stale.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            if json.loads(aside.read_text()) != owner:  # a fresh lock: put it back
                try:
                    os.link(aside, self.path)
                except FileExistsError:
                    pass
        except (OSError, ValueError):
            pass
        finally:
            aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock if this object holds it (and the folders ``acquire`` created, the
        run directory and the ``output_dir`` above it, while they are empty)."""
        if self.held:
            self.held = False
            owner = self._owner()
            if owner and owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            for folder in self.created:  # a run that failed its checks leaves nothing behind
                try:
                    if any(folder.iterdir()):
                        break
                    folder.rmdir()
                except OSError:
                    break


# ------------------------------------------------------------------ the files the trainer owns

#: Glob patterns, relative to the run directory, of everything a training writes there, but
#: its checkpoints (named by ``checkpoint_names``: a user's own ``checkpoints/*.pt`` is kept).
OWNED_FILES = (
    "config.yaml",
    "train.log",
    CHANGES_NAME,
    "final_results.md",
    "comparison.png",
    "tensorboard/events.out.tfevents.*",
    "export/release_layout.pth",
    "export/weights.safetensors",
)

#: Temporary files of writes a kill interrupted (``outputs.replaced``: ``.<stem>.<random>.tmp
#: <suffix>``; runs of earlier versions left ``.<name>.<random>.tmp``).
TEMPORARY_FILES = ("checkpoints/.*.tmp.pt", "checkpoints/.*.tmp", "export/.*.tmp.pth",
                   "export/.*.tmp.safetensors", "export/.*.tmp")

#: TensorBoard's names for the event files it writes (``<time>.<host>.<pid>.<n>``): a file of
#: the user's that merely starts like one is not the trainer's.
EVENT_FILE = re.compile(r"events\.out\.tfevents\.\d{10}\..+\.\d+\.\d+")


def checkpoint_names(run_dir: Path) -> re.Pattern[str]:
    """The names the trainer gives its checkpoints: ``latest.pt``, ``best.pt``,
    ``stage<N>_epoch<NNNN>.pt`` and ``stage<N>_<stage name>.pt`` for the stages of the run's
    stored ``config.yaml`` (when it can be read)."""
    names = ["latest", "best", r"stage\d+_epoch\d{4}"]
    try:
        stored = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        stages = stored["train"]["stages"]
        names += [re.escape(f"stage{i + 1}_{stage['name']}") for i, stage in enumerate(stages)]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        pass
    return re.compile(rf"(?:{'|'.join(names)})\.pt")


def clear_owned_files(run_dir: Path) -> list[Path]:
    """Delete the files a previous training wrote in ``run_dir`` (for ``--overwrite``); files
    the trainer does not write are left alone. Returns what was deleted."""
    found = owned_files(run_dir)
    for path in found:
        path.unlink()
    return found


def owned_files(run_dir: Path) -> list[Path]:
    """The files in ``run_dir`` a training wrote: ``OWNED_FILES``, its checkpoints and the
    temporary files of interrupted writes."""
    ours = checkpoint_names(run_dir)
    found = [p for p in sorted(run_dir.glob("checkpoints/*.pt")) if ours.fullmatch(p.name)]
    for pattern in (*OWNED_FILES, *TEMPORARY_FILES):
        found += sorted(run_dir.glob(pattern))
    return [p for p in found if p.is_file()
            and (p.parent.name != "tensorboard" or EVENT_FILE.fullmatch(p.name))]


ASIDE_NAME = ".overwritten"


def set_aside_owned_files(run_dir: Path) -> list[Path]:
    """``--overwrite``: move the previous run's own files into ``run_dir/.overwritten`` (paths
    kept) instead of deleting them, so a new run that fails before its first checkpoint can
    put them back (``restore_set_aside``). Files left there by an earlier attempt that never
    reached a checkpoint are the older run: they are kept, and that attempt's files deleted.
    Returns the files moved or deleted."""
    aside = run_dir / ASIDE_NAME
    if aside.is_dir():
        return clear_owned_files(run_dir)
    found = owned_files(run_dir)
    for path in found:
        target = aside / path.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    return found


def restore_set_aside(run_dir: Path) -> list[Path]:
    """Put the files ``set_aside_owned_files`` moved back in place (the new run wrote no
    checkpoint: the previous run is worth more than its few files). Returns them."""
    aside = run_dir / ASIDE_NAME
    back = []
    for path in sorted(p for p in aside.rglob("*") if p.is_file()):
        target = run_dir / path.relative_to(aside)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        back.append(target)
    drop_set_aside(run_dir)
    return back


def drop_set_aside(run_dir: Path) -> None:
    """Delete the previous run's files once the new run has its first checkpoint."""
    aside = run_dir / ASIDE_NAME
    if aside.is_dir():
        for path in sorted(aside.rglob("*"), reverse=True):
            path.unlink() if not path.is_dir() else path.rmdir()
        aside.rmdir()


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the ``TEMPORARY_FILES`` left by writes that a kill interrupted (the lock is held,
    so none of them is being written)."""
    removed = []
    for pattern in (*TEMPORARY_FILES, f".{LOCK_NAME}.*"):
        for path in run_dir.glob(pattern):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def finished_stages(run_dir: Path) -> int | None:
    """How many stages the run's ``checkpoints/latest.pt`` has completed (its stored progress),
    or ``None`` when there is no readable one; ``--resume`` of a run that has done all its
    stages has nothing to do."""
    from ..models.checkpoint import CheckpointError, read_checkpoint

    latest = run_dir / "checkpoints" / "latest.pt"
    if not latest.is_file():
        return None
    try:
        return int(read_checkpoint(latest)["progress"]["stage"])
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None


# ------------------------------------------------------------------ resume: config changes


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys (``train.stages[0].lr``) of a nested mapping/list, mapped to leaf values."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple))
                                                for v in value):
        out = {f"{prefix}.length": len(value)}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: list(value) if isinstance(value, tuple) else value}


def config_changes(stored: dict, passed: dict) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (stored value, passed value)}`` for every key whose value differs."""
    old, new = flatten(stored), flatten(passed)
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)}


def is_resumable(key: str) -> bool:
    """Whether a resumed run may change ``key`` without ``--resume-with-changes``."""
    return key in RESUMABLE_KEYS


def record_changes(run_dir: Path, changes: dict[str, tuple[Any, Any]], step: int,
                   forced: bool) -> Path:
    """Append the config changes of a resume, with a UTC timestamp, to ``config_changes.yaml``
    (``config.yaml`` keeps the config the run started with)."""
    path = run_dir / CHANGES_NAME
    entry = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "resumed_at_global_step": step,
        "with_resume_with_changes": forced,
        "changes": {k: {"from": a, "to": b} for k, (a, b) in changes.items()},
    }
    text = yaml.safe_dump([entry], sort_keys=False)
    with open(path, "a") as f:
        f.write(text)
    return path


def refuse_changes(changes: dict[str, tuple[Any, Any]]) -> None:
    """Raise a ``ResumeConfigError`` naming the keys a resume may not change silently."""
    fixed = {k: v for k, v in changes.items() if not is_resumable(k)}
    if fixed:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(fixed.items())[:8])
        more = f" (and {len(fixed) - 8} more)" if len(fixed) > 8 else ""
        raise ResumeConfigError(
            f"--resume: the config differs from the run's stored config in {shown}{more}. "
            "A resumed run continues with its stored config: pass the same config, or "
            "--resume-with-changes to apply the change (recorded in the run's "
            f"{CHANGES_NAME})")
