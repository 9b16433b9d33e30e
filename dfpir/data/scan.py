"""Finding (degraded, clean) pairs on disk by the layouts of ``layouts``.

``scan_task_folders`` never raises: it returns every pair it found and every problem it met, for
``check_data``. ``find_pairs`` is the strict form the datasets use: it raises ``LayoutError``
naming the folder or file and printing the expected layout.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LayoutError
from .io import is_image_file
from .layouts import (
    _MISSING_EXAMPLES,
    LAYOUT_MODES,
    LAYOUTS,
    LIST_MISSING_MODES,
    ImagePair,
    clean_stem_candidates,
)
from .tasks import task_family

logger = logging.getLogger(__name__)


@dataclass
class ScanResult:
    """What a folder scan found: pairs, the folders it looked in, problems, notes."""

    task: str
    roots: list[str]
    folders: list[str] = field(default_factory=list)
    pairs: list[ImagePair] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    layout_problem: bool = False  # a folder is missing or wrong: show the expected layout

    @property
    def expected_layout(self) -> str:
        return LAYOUTS[task_family(self.task)].expected




def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (optionally its sub-folders), sorted, hidden files skipped."""
    if recursive:
        found = [
            Path(dirpath) / name
            for dirpath, dirnames, filenames in os.walk(folder)
            for name in filenames
            if not any(part.startswith(".") for part in Path(dirpath).relative_to(folder).parts)
        ]
    else:
        found = [path for path in folder.iterdir() if path.is_file()]
    return sorted(path for path in found if is_image_file(path))


def _subfolders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_candidates(
    family: str, degraded_dir: str, clean_dir: str
) -> tuple[tuple[str, str], ...]:
    if degraded_dir or clean_dir:
        if not (degraded_dir and clean_dir):
            raise LayoutError("set both degraded_dir and clean_dir, or neither")
        return ((degraded_dir, clean_dir),)
    return LAYOUTS[family].folder_pairs


def _locate_pair_folders(
    root: Path, candidates: tuple[tuple[str, str], ...], layout: str
) -> list[tuple[str, Path, Path]]:
    """(sequence prefix, degraded folder, clean folder) triples for one root; [] when none."""

    def flat_pair(base: Path) -> tuple[Path, Path] | None:
        for degraded, clean in candidates:
            if (base / degraded).is_dir() and (base / clean).is_dir():
                return base / degraded, base / clean
        return None

    if layout in ("auto", "flat"):
        found = flat_pair(root)
        if found is not None:
            return [("", *found)]
        if layout == "flat":
            return []
    nested = []
    for name in _subfolders(root):
        found = flat_pair(root / name)
        if found is not None:
            nested.append((name, *found))
    return nested


def _index_by_stem(paths: list[Path]) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        index[path.stem].append(path)
    return index


def _pair_folder(
    family: str, prefix: str, degraded_folder: Path, clean_folder: Path, result: ScanResult
) -> tuple[list[ImagePair], dict[str, str], list[Path]]:
    """Pair one degraded folder with its clean folder.

    Returns the pairs, the unpaired degraded files (path -> problem text) and the clean files
    no degraded image used.
    """
    recursive = LAYOUTS[family].recursive
    degraded_files = list_images(degraded_folder, recursive)
    clean_files = list_images(clean_folder, recursive)
    result.folders += [str(degraded_folder), str(clean_folder)]
    for folder, files in ((degraded_folder, degraded_files), (clean_folder, clean_files)):
        if not files:
            result.problems.append(f"no images in folder {folder}")
            result.layout_problem = True
    clean_index = _index_by_stem(clean_files)
    used: set[Path] = set()
    pairs, unpaired = [], {}
    for degraded in degraded_files:
        stems = clean_stem_candidates(family, degraded.stem)
        matches = next((clean_index[s] for s in stems if s in clean_index), [])
        if len(matches) > 1:
            unpaired[str(degraded)] = f"ambiguous clean image for {degraded}: " + ", ".join(
                str(m) for m in matches
            )
        elif not matches:
            looked = " or ".join(f"{clean_folder}/{s}.*" for s in stems)
            unpaired[str(degraded)] = f"unpaired image {degraded}: no clean image {looked}"
        else:
            used.add(matches[0])
            name = f"{prefix}_{degraded.stem}" if prefix else degraded.stem
            pairs.append(ImagePair(name=name, clean=str(matches[0]), degraded=str(degraded)))
    unused_clean = [path for path in clean_files if path not in used]
    return pairs, unpaired, unused_clean


def _read_list_file(list_file: str, result: ScanResult) -> list[tuple[int, str]]:
    path = Path(list_file)
    if not path.is_file():
        result.problems.append(f"list file not found: {path}")
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            entries.append((number, entry.replace("\\", "/")))
    if not entries:
        result.problems.append(f"list file {path} names no images")
    return entries


def _select_listed(
    entries: list[tuple[int, str]],
    keyed: dict[str, str],
    candidates: dict[str, ImagePair],
    unpaired: dict[str, str],
    list_file: str,
    result: ScanResult,
    missing_mode: str = "error",
) -> list[ImagePair] | None:
    """The pairs a list file names, in its order; each name is a path relative to a root, to the
    degraded folder, or a bare file name. Entries not on disk are reported once, by count and
    the first few names; with ``missing_mode`` 'present' they are left out (a note), with 'scan'
    the list is dropped (returns None: use the whole folder)."""
    selected, missing = [], []
    for number, entry in entries:
        key = keyed.get(entry) or keyed.get(entry.removeprefix("./")) or keyed.get(Path(entry).name)
        if key is None:
            missing.append((number, entry))
        elif key in unpaired:
            result.problems.append(f"{list_file}:{number}: {unpaired[key]}")
        else:
            selected.append(candidates[key])
    if not missing:
        return selected
    examples = ", ".join(f"{e!r} (line {n})" for n, e in missing[:_MISSING_EXAMPLES])
    more = f" and {len(missing) - _MISSING_EXAMPLES} more" if len(missing) > _MISSING_EXAMPLES else ""
    summary = (f"{len(missing)} of {len(entries)} files listed in {list_file} are missing under "
               f"{', '.join(result.roots)}: {examples}{more}")
    if missing_mode == "present":
        result.notes.append(f"{summary}; list_missing: present uses the {len(selected)} found")
        return selected
    if missing_mode == "scan":
        result.notes.append(f"{summary}; list_missing: scan uses every pair in the folders instead")
        return None
    result.problems.append(
        f"{summary}. Put the files there, or set list_missing: present (train on the listed "
        f"files that exist) or list_missing: scan (ignore the list, use the folders) for this task"
    )
    return selected


def _keys_for(path: Path, root: Path, folder: Path) -> list[str]:
    keys = [path.relative_to(root).as_posix(), path.relative_to(folder).as_posix(), path.name]
    return list(dict.fromkeys(keys))


def scan_task_folders(
    task: str,
    roots: list[str],
    *,
    list_file: str = "",
    layout: str = "auto",
    degraded_dir: str = "",
    clean_dir: str = "",
    list_missing: str = "error",
) -> ScanResult:
    """Find the samples of ``task`` under ``roots``; collects problems instead of raising.

    ``layout``: 'flat' (root/<degraded>/ + root/<clean>/), 'nested' (one sub-folder per
    sequence, each holding both, as GoPro_Large), or 'auto' (flat if present, else nested).
    ``degraded_dir``/``clean_dir`` override the task's standard sub-folder names (for denoising,
    ``clean_dir`` is a sub-folder of the root holding the clean images). ``list_file`` selects a
    subset: one relative image path per line, as PromptIR's list files; ``list_missing`` says
    what listed files that are not on disk do (``LIST_MISSING_MODES``).
    """
    family = task_family(task)
    result = ScanResult(task=task, roots=[str(r) for r in roots])
    if layout not in LAYOUT_MODES:
        result.problems.append(f"unknown layout {layout!r}; expected one of {LAYOUT_MODES}")
        return result
    if not roots:
        result.problems.append(f"no root folder configured for task {task!r}")
        result.layout_problem = True
        return result
    candidates: dict[str, ImagePair] = {}  # degraded (or clean, for denoise) path -> pair
    keyed: dict[str, str] = {}  # list-file key -> path
    unpaired: dict[str, str] = {}
    unused_clean: list[Path] = []
    for root_text in roots:
        root = Path(root_text)
        if not root.is_dir():
            result.folders.append(str(root))
            what = "is not a folder" if root.exists() else "not found"
            result.problems.append(f"root folder {what}: {root}")
            result.layout_problem = True
            continue
        if family == "denoise":
            folder = root / clean_dir if clean_dir else root
            result.folders.append(str(folder))
            files = list_images(folder) if folder.is_dir() else []
            if not folder.is_dir():
                result.problems.append(f"folder not found: {folder}")
                result.layout_problem = True
            elif not files:
                result.problems.append(f"no images in folder {folder}")
                result.layout_problem = True
            for path in files:
                candidates[str(path)] = ImagePair(name=path.stem, clean=str(path))
                for key in _keys_for(path, root, folder):
                    keyed.setdefault(key, str(path))
            continue
        try:
            folder_pairs = _folder_candidates(family, degraded_dir, clean_dir)
        except LayoutError as error:
            result.problems.append(str(error))
            return result
        located = _locate_pair_folders(root, folder_pairs, layout)
        if not located:
            wanted = " or ".join(f"{d}/ + {c}/" for d, c in folder_pairs)
            where = "in it or in its sub-folders" if layout != "flat" else "in it"
            result.folders.append(str(root))
            result.problems.append(
                f"folder {root} has no {wanted} {where} "
                f"(it contains: {', '.join(_subfolders(root)) or 'no sub-folders'})"
            )
            result.layout_problem = True
            continue
        for prefix, degraded_folder, clean_folder in located:
            pairs, missing, unused = _pair_folder(
                family, prefix, degraded_folder, clean_folder, result
            )
            unpaired.update(missing)
            unused_clean += unused
            for pair in pairs:
                candidates[pair.degraded] = pair
            for path_text in [*(p.degraded for p in pairs), *missing]:
                path = Path(path_text)
                for key in _keys_for(path, root, degraded_folder):
                    keyed.setdefault(key, path_text)
                if prefix:  # nested GoPro: the release's flattened name <sequence>_<file>
                    keyed.setdefault(f"{prefix}_{path.name}", path_text)
    if list_missing not in LIST_MISSING_MODES:
        result.problems.append(
            f"unknown list_missing {list_missing!r}; expected one of {LIST_MISSING_MODES}")
        return result
    if list_file and any(Path(r).is_dir() for r in roots):  # no root: its list says nothing
        entries = _read_list_file(list_file, result)
        selected = _select_listed(entries, keyed, candidates, unpaired, list_file, result,
                                  list_missing)
        if selected is not None:
            result.pairs = selected
            return result
    result.pairs = list(candidates.values())
    result.problems += list(unpaired.values())
    if unused_clean:
        if LAYOUTS[family].one_to_one:
            result.problems += [
                f"unpaired image {p}: no degraded image for it" for p in unused_clean
            ]
        else:
            result.notes.append(f"{len(unused_clean)} clean images have no degraded partner")
    return result


def format_problems(problems: list[str], limit: int = 10) -> str:
    """The first ``limit`` problems, one per line, and how many more there are."""
    lines = [f"  - {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def find_pairs(
    task: str,
    roots: list[str],
    *,
    list_file: str = "",
    layout: str = "auto",
    degraded_dir: str = "",
    clean_dir: str = "",
    list_missing: str = "error",
) -> list[ImagePair]:
    """The samples of ``task`` under ``roots`` (see ``scan_task_folders``).

    Raises ``LayoutError`` listing the problems (missing or empty folder, unpaired image, bad
    list entry) and, for folder problems, the expected layout.
    """
    result = scan_task_folders(
        task,
        roots,
        list_file=list_file,
        layout=layout,
        degraded_dir=degraded_dir,
        clean_dir=clean_dir,
        list_missing=list_missing,
    )
    for note in result.notes:
        if "list_missing" in note:
            logger.warning("task %r: %s", task, note)
    if result.problems or not result.pairs:
        problems = result.problems or [f"no images found under {', '.join(result.roots)}"]
        message = f"task {task!r}: the data under {', '.join(result.roots)} is not usable:\n"
        message += format_problems(problems)
        if result.layout_problem or not result.pairs:
            message += f"\nexpected layout:\n{result.expected_layout}"
        raise LayoutError(message)
    return result.pairs
