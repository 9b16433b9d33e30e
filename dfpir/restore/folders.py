"""The files ``restore`` reads and writes: the images of a folder (``collect_inputs``, which
tells an earlier run's results from the photos) and the names of the results
(``output_paths``: never an input, never a file that was there before unless ``--overwrite``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..data import DataError
from ..data.io import IMAGE_EXTENSIONS, is_image_file, png_text
from ..errors import OutputPlaceError
from ..outputs import (
    check_name_lengths,
    claim_file,
    place_keys,
    reserve,
    unique_path,
    with_companions,
)
from ..paths import not_a_file, some_names

__all__ = ["RESULT_TEXT", "collect_inputs", "frame_count", "output_paths"]

logger = logging.getLogger(__name__)


#: The PNG text chunk ``restore`` writes into its results, so that a second run into the same
#: folder can tell them from the photos.
RESULT_TEXT = {"Software": "dfpir restore"}


def collect_inputs(path: str | os.PathLike, out: str | os.PathLike | None = None,
                   notes: list[str] | None = None) -> list[Path]:
    """The image files to restore: ``path`` itself, or the image files in the folder
    ``path`` (not its sub-folders), sorted; the other files of the folder (and entries that
    are no files: broken links, FIFOs) are named in a note,
    and an animated image given alone gets a note that only its first frame is restored.
    When ``out`` is the folder itself, the results an earlier ``restore`` wrote there (their
    PNG says so, ``RESULT_TEXT``) are skipped with a note: a second run restores the photos,
    not the first run's results. The notes go to ``notes`` when given (see ``_noter``), else
    to the log. Raises ``DataError`` when there are none."""
    path = Path(path)
    note = _noter(notes)
    if path.is_dir():
        listing = sorted(path.iterdir())
        visible = [p for p in listing if not p.name.startswith(".")]
        entries = [p for p in visible if p.is_file()]
        files = [p for p in entries if is_image_file(p)]
        others = [p.name for p in entries if not is_image_file(p)]
        unreadable = [p.name for p in visible if not p.is_dir() and not p.is_file()]
        skipped: list[str] = []  # what the notes say; the error too, when nothing is left
        if unreadable:  # broken or looping links, FIFOs, sockets
            skipped.append(f"{len(unreadable)} entr(ies) of {path} skipped, not files (links to "
                           f"nothing or that loop, FIFOs...): {some_names(unreadable)}")
        if others:
            gif = any(n.lower().endswith(".gif") for n in others)
            skipped.append(f"{len(others)} file(s) of {path} skipped, not PNG/JPEG/BMP/TIFF/"
                           "WebP images" + (" (GIF: give one as --input to restore it, its "
                                            "first frame when animated)" if gif else "")
                           + f": {some_names(others)}")
        hidden = [p.name for p in listing if p.name.startswith(".") and p.is_file()
                  and Path(p.name.lstrip(".")).suffix.lower() in IMAGE_EXTENSIONS]
        if hidden:
            skipped.append(f"{len(hidden)} hidden image(s) of {path} skipped (the name starts "
                           f"with a dot): {some_names(hidden)}")
        if out is not None and Path(out).is_dir() and Path(out).samefile(path):
            earlier = [p for p in files if _is_result(p)]
            if earlier:
                skipped.append(f"{len(earlier)} image(s) of {path} skipped: results of an "
                               "earlier dfpir restore into this folder (their PNG says so): "
                               f"{some_names([p.name for p in earlier])}; to restore one "
                               "again, give it as --input")
                files = [p for p in files if p not in earlier]
                if not files:
                    raise DataError(f"folder {path} holds only results of an earlier dfpir "
                                    "restore; give one as --input to restore it again")
        if not files:
            folders = any(p.is_dir() for p in visible)
            raise DataError(f"no image files to restore in folder {path}" + (
                " (its sub-folders are not searched: give one as --input)" if folders else "")
                + "".join(f"; {text}" for text in skipped))
        for text in skipped:
            note("note: %s", text)
        return files
    why = not_a_file(path)
    if why:
        raise DataError(f"input {path} {why}; expected an image file or a folder of them")
    frames = frame_count(path)
    if frames > 1:
        note("note: %s has %d frames (an animation): only the first is restored", path, frames)
    return [path]


def _noter(notes: list[str] | None) -> Callable[..., None]:
    """Where notes go: to ``notes`` when given (said by the caller once the outputs are
    checked too, so that a refusal stays one line), else to the log."""
    def note(text: str, *values: object) -> None:
        if notes is None:
            logger.info(text, *values)
        else:
            notes.append(text % values)

    return note


def _is_result(path: Path) -> bool:
    text = png_text(path)
    return all(text.get(key) == value for key, value in RESULT_TEXT.items())


def frame_count(path: Path) -> int:
    """How many frames an image file holds (1 for a still or an unreadable file)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # noqa: BLE001 (unreadable: the restore itself reports it)
        return 1


def output_paths(inputs: Sequence[Path], out: Path, single_file: bool,
                 compare: bool = False, overwrite: bool = False,
                 notes: list[str] | None = None) -> list[Path]:
    """Where each restored image goes: ``out/<stem>.png`` (``<stem>_<ext>.png`` when two inputs
    share a stem; ``_2``, ``_3``... appended while a name, or with ``compare`` its
    ``_side_by_side.png``, is an existing file or already given out), so no result lands on
    another or on a file that was there before; with ``overwrite`` existing files other than
    the inputs may be replaced. A single input may name the output file itself (``--out
    result.png``), refused when it exists unless ``overwrite``. Raises ``DataError`` before any
    work for an output that cannot be written as asked. Notes as ``collect_inputs``."""
    check_name_lengths(out, "--out")
    suffix = out.suffix.lower()
    taken = reserve(inputs, set())  # never an input, even with overwrite
    companions = ("_side_by_side",) if compare else ()
    if single_file and suffix == ".png":
        if out.is_dir():
            raise DataError(f"--out {out} is a folder; name a .png file or a folder without "
                            "the .png ending")
        for name in with_companions(out, companions):
            if any(k in taken for k in place_keys(name)):
                raise DataError(f"--out {name} is the input itself (or another name of it, a "
                                "link); choose another name")
            claim_file(name, "--out", overwrite)
        return [out]
    if suffix and is_image_file(out) and not out.is_dir():
        raise DataError(
            f"--out {out}: restored images are written as PNG (16-bit and alpha kept); "
            + ("name the output file .png" if single_file else
               "a folder input needs an output folder"))
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is an existing file; expected an output folder")
    stems = [p.stem for p in inputs]
    paths = [unique_path(out / (f"{p.stem}_{p.suffix.lstrip('.').lower()}.png"
                                if stems.count(p.stem) > 1 else f"{p.stem}.png"),
                         taken, companions, keep_existing=not overwrite) for p in inputs]
    renamed = [f"{p.name} -> {path.name}" for p, path in zip(inputs, paths, strict=True)
               if path.name != f"{p.stem}.png"]
    if renamed:
        _noter(notes)("note: %d result(s) named apart from their input, as <stem>.png was "
                      "taken (by another input's result or a file there): %s", len(renamed),
                      some_names(renamed))
    for source, path in zip(inputs, paths, strict=True):
        for name in with_companions(path, companions):
            try:
                check_name_lengths(name, "--out")
            except OutputPlaceError:  # --out itself passed: the name made from the input
                raise DataError(f"the result for input {source.name[:40]}... would be named "
                                f"{name.name[:40]}... ({len(os.fsencode(name.name))} bytes), "
                                "longer than the file system allows: rename that input"
                                + (" or leave out --side-by-side" if companions else "")
                                ) from None
    return paths
