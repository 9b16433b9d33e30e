"""The places a command writes to, checked before any work, and the one naming rule for results.

``check_output_place``: the place exists as the right kind (folder or file), its names fit the
file system, it can be written and has room for a probe file. Nothing is created: the probe goes
in the nearest existing folder and is deleted at once.

The rule for results: a command never writes over a file that existed before it started unless
the user says ``--overwrite``. A file the user named (``claim_file``) or a set of fixed result
names (``claim_names``) that already exists is an error; a name the command makes itself
(``unique_path``) steps to ``_2``, ``_3``... past every existing file and every name this run
has already given out."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from .errors import OutputPlaceError, OutputWriteError

__all__ = [
    "FULL",
    "check_name_lengths",
    "check_output_place",
    "check_room",
    "claim_file",
    "claim_names",
    "free_folder",
    "new_file_mode",
    "place_key",
    "place_keys",
    "refuse_inputs",
    "replaced",
    "reserve",
    "stops_held",
    "unique_path",
    "with_companions",
    "writing_to",
]

#: The errors of a write that a full disk (or quota) causes.
FULL = (errno.ENOSPC, errno.EDQUOT)

#: The probe's size: enough that a full disk (or quota) refuses it.
PROBE_BYTES = 4096


def _nearest_existing(path: Path) -> Path:
    for place in (path, *path.parents):
        try:
            if place.exists() or place.is_symlink():
                return place
        except OSError:  # a name too long to even look up: its parent, then
            continue
    return Path(".")


def _limit(place: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(place, name)
    except (OSError, ValueError):
        return default


def check_name_lengths(path: str | os.PathLike, flag: str) -> Path:
    """Raise ``OutputPlaceError`` naming ``flag`` when a part of ``path`` is longer than the
    file system allows (usually 255 bytes a name, 4096 a path), before anything is written."""
    path = Path(path)
    base = _nearest_existing(path.absolute().parent)
    name_max = _limit(base, "PC_NAME_MAX", 255)
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise OutputPlaceError(f"{flag} {path}: the name {part[:40]}... is "
                                   f"{len(os.fsencode(part))} bytes long; the file system allows "
                                   f"{name_max}; choose a shorter name")
    path_max = _limit(base, "PC_PATH_MAX", 4096)
    if len(os.fsencode(str(path.absolute()))) >= path_max:
        raise OutputPlaceError(f"{flag} {path}: the path is longer than the file system allows "
                               f"({path_max} bytes); choose a shorter one")
    return path


def check_output_place(path: str | os.PathLike, kind: Literal["dir", "file"], flag: str) -> Path:
    """Raise ``OutputPlaceError`` naming ``flag`` and ``path`` unless results can be written
    there: ``kind`` ``"dir"`` (a folder, made later if missing) or ``"file"`` (a file, maybe
    replaced). Returns the path."""
    if isinstance(path, str) and not path.strip():  # Path("") is "." : say so instead
        raise OutputPlaceError(f"{flag} is empty; name a {'folder' if kind == 'dir' else 'file'}"
                               + (" (. for the current folder)" if kind == "dir" else ""))
    path = check_name_lengths(path, flag)
    if kind == "dir" and path.exists() and not path.is_dir():
        raise OutputPlaceError(f"{flag} {path} is an existing file (or FIFO/device); expected "
                               "a folder")
    if kind == "file" and path.is_dir():
        raise OutputPlaceError(f"{flag} {path} is a folder; expected a file name")
    if kind == "file" and path.exists() and not path.is_file():
        raise OutputPlaceError(f"{flag} {path} is not a regular file; expected a file name")
    base = _nearest_existing(path if kind == "dir" else path.parent)
    if base.is_symlink() and not base.exists():
        what = "that loops" if _stat_errno(base) == errno.ELOOP else "to nothing"
        raise OutputPlaceError(f"{flag} {path}: {base} is a symbolic link {what}; remove it or "
                               "choose another place")
    if not base.is_dir():
        raise OutputPlaceError(f"{flag} {path}: {base} is a file, so nothing can be made under "
                               "it; choose another place")
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".dfpir_probe_") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        if err.errno in FULL:
            why, advice = "the disk (or quota) is full", "free some space or choose another place"
        elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why, advice = "it is read-only for you", "choose another place"
        else:
            why, advice = err.strerror or str(err), "choose another place"
        refused = OutputPlaceError(f"{flag} {path}: cannot write in {base}: {why}; {advice}")
        refused.errno = err.errno  # a full disk (FULL) is told apart without reading the text
        raise refused from None
    return path


def _stat_errno(path: Path) -> int | None:
    """The error ``stat`` meets at ``path`` (``None`` when there is none)."""
    try:
        os.stat(path)
    except OSError as err:
        return err.errno
    return None


def check_room(path: str | os.PathLike, need: int, flag: str) -> None:
    """Raise ``OutputPlaceError`` when the disk holding ``path`` has less than ``need`` bytes
    free: a result whose size is known before the work is refused before it (the old file of
    that name, replaced by a new one, is counted as freed only after: not here)."""
    base = _nearest_existing(Path(path).parent)
    try:
        free = shutil.disk_usage(base).free
    except OSError:
        return
    if free < need:
        raise OutputPlaceError(f"{flag} {path}: about {_size(need)} will be written and "
                               f"{_size(free)} is free in {base}; free some space or choose "
                               "another place")


def _size(count: int) -> str:
    """Bytes in the unit that shows them (12 KiB, not 0.0 MiB)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


@contextmanager
def writing_to(path: str | os.PathLike, flag: str, again: str = "run it again"
               ) -> Iterator[None]:
    """Around the work that writes a command's results to ``path``: a disk (or quota) that
    fills up on the way is ``OutputWriteError`` naming ``flag``, the file and what was kept,
    not a traceback. Other errors pass unchanged."""
    try:
        yield
    except OSError as err:
        if isinstance(err, OutputPlaceError) or err.errno not in FULL:
            raise
        failed = f" writing {err.filename}" if err.filename else ""
        raise OutputWriteError(
            f"{flag} {path}: the disk (or quota) filled up{failed}; the files written before "
            f"are kept. Free some space or choose another place, then {again}") from None


def claim_file(path: str | os.PathLike, flag: str, overwrite: bool = False,
               suffix: str | None = None, inputs: Mapping[str, object] | None = None) -> Path:
    """A result file the user named: checked as ``check_output_place`` does, with the ending
    ``suffix`` when given, and refused when it exists unless ``overwrite``, and always when it
    is one of the command's ``inputs`` ({flag: path}) under any name."""
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise OutputPlaceError(f"{flag} {path}: expected a file name ending in {suffix}")
    check_output_place(path, "file", flag)
    refuse_inputs(path, flag, inputs)
    if (path.exists() or path.is_symlink()) and not overwrite:
        what = "is a symbolic link to nothing" if not path.exists() else "exists"
        raise OutputPlaceError(f"{flag} {path} {what}; give --overwrite to replace it (the "
                               "name, never a link's target), or another name")
    return path


def claim_names(folder: str | os.PathLike, names: Iterable[str], flag: str,
                overwrite: bool = False, inputs: Mapping[str, object] | None = None) -> Path:
    """A results folder with fixed file names: checked as ``check_output_place`` does, and
    refused when it already holds one of ``names`` unless ``overwrite``, when one of them
    is there but not a file (which ``overwrite`` cannot replace), and when one of them is one
    of the command's ``inputs`` ({flag: path}) under any name."""
    folder = check_output_place(folder, "dir", flag)
    for name in names:
        refuse_inputs(folder / name, flag, inputs)
    held = sorted(n for n in names if (folder / n).exists() or (folder / n).is_symlink())
    for name in held:  # not even --overwrite replaces a folder (or a FIFO...) by a file
        if not (folder / name).is_file():
            raise OutputPlaceError(f"{flag} {folder}: {name} there is not a file (a folder or "
                                   "a link to nothing), so the result of that name cannot be "
                                   "written; move it away or choose another folder")
    if held and not overwrite:
        raise OutputPlaceError(f"{flag} {folder} already holds {', '.join(held[:4])}"
                               + (" ..." if len(held) > 4 else "")
                               + "; give --overwrite to replace them, or another folder")
    return folder


def refuse_inputs(path: Path, flag: str, inputs: Mapping[str, object] | None) -> None:
    """Raise ``OutputPlaceError`` when the result ``path`` is one of ``inputs`` ({flag: path,
    None for an input not given}) under any name (itself, a link, a hard link): not even
    ``--overwrite`` replaces what the command reads."""
    keys = set(place_keys(path))
    for input_flag, source in (inputs or {}).items():
        if source is not None and keys & set(place_keys(Path(str(source)))):
            raise OutputPlaceError(f"{flag} {path} is the {input_flag} file {source} itself "
                                   "(or another name of it, a link); --overwrite never "
                                   "replaces an input: choose another name")


def free_folder(path: str | os.PathLike) -> Path:
    """``path``, or ``<path>_2``, ``<path>_3``...: the first that does not exist or is an empty
    folder (a default results folder that never lands on an earlier run's results)."""
    path = Path(path)
    candidate, n = path, 1
    while candidate.exists() and not (candidate.is_dir() and not any(candidate.iterdir())):
        n += 1
        candidate = path.with_name(f"{path.name}_{n}")
    return candidate


def place_key(path: Path) -> str:
    """One key per place on disk: links resolved, case folded (for case-folding file systems)."""
    return os.path.realpath(path).lower()


def place_keys(path: Path) -> list[str]:
    """``place_key`` and, for an existing file, its device and inode: a hard link to a file
    is another name of the same file, which a name alone does not tell."""
    keys = [place_key(path)]
    try:
        st = os.stat(path)
    except OSError:
        return keys
    return [*keys, f"\1{st.st_dev}:{st.st_ino}"]


def _reserve_existing(folder: Path, taken: set[str]) -> None:
    """Add every entry of ``folder`` to ``taken``, once per folder (one listing, not one per
    name tried: restoring 10,000 photos into their own folder stays linear)."""
    marker = "\0" + place_key(folder)
    if marker in taken:
        return
    taken.add(marker)
    try:
        entries = os.listdir(folder)
    except OSError:  # not there yet: nothing in it to keep
        return
    taken.update(place_key(folder / name) for name in entries)


def with_companions(path: Path, companions: Sequence[str] = ()) -> list[Path]:
    """``path`` and its ``<stem><companion><suffix>`` files (``x.png``, ``x_side_by_side.png``)."""
    return [path] + [path.with_name(f"{path.stem}{c}{path.suffix}") for c in companions]


def unique_path(path: Path, taken: set[str], companions: Sequence[str] = (), *,
                keep_existing: bool = True) -> Path:
    """``path``, or ``<stem>_2<suffix>``, ``<stem>_3<suffix>``...: the first name that, with its
    ``<stem><companion><suffix>`` files, is neither in ``taken`` nor, with ``keep_existing``,
    an existing file (both compared case-insensitively, for case-folding file systems).
    Reserves the names in ``taken``: one rule for every writer of results, so no result lands
    on another or on a file that was there before."""
    if keep_existing:
        _reserve_existing(path.parent, taken)
    candidate, n = path, 1
    while any(k in taken for q in with_companions(candidate, companions) for k in place_keys(q)):
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    taken.update(place_key(q) for q in with_companions(candidate, companions))
    return candidate


def reserve(paths: Iterable[Path], taken: set[str]) -> set[str]:
    """Add ``paths`` (inputs, say) to ``taken``: ``unique_path`` never gives them out, nor
    another name (a hard link) of the same file."""
    taken.update(k for p in paths for k in place_keys(Path(p)))
    return taken


def new_file_mode() -> int:
    """The permissions ``open`` gives a new file (0666 less the umask); a temporary file made
    by ``tempfile`` has 0600, which a result renamed from it should not keep."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def replaced(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that go by it still do) to
    write the new file to; renamed over ``path`` when the block ends without error, removed
    otherwise. An existing file of that name is replaced, never written through: another name
    of it (a hard link) or a link's target keeps its content, and a failed write leaves the
    old file whole. The new file gets the usual permissions (0666 less the umask).
    ``durable`` (checkpoints): the new file is flushed to the disk before the rename and the
    rename after it, so a power cut leaves the old file or the new one, never a hole."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:100]}.",
                                suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def stops_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait for the block to end, then act as they would have: a result
    written in the block is also counted, never on the disk yet missing from what the command
    says it wrote. Only the main thread hears signals; elsewhere the block just runs."""
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in stops}
    if (threading.current_thread() is not threading.main_thread()
            or any(h is None for h in previous.values())):  # a handler Python cannot put back
        yield
        return
    heard: list[int] = []
    for s in stops:
        signal.signal(s, lambda signum, _frame: heard.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if heard:  # the first stop, as its own handler takes it (an error of the block too)
            handler = previous[heard[0]]
            if callable(handler):
                handler(heard[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(heard[0])
