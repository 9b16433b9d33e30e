"""Checking a data config against the disk before training: what is where, and what is wrong.

``check_data`` scans every training task and test set of a config, counts the pairs, reads every
image header (or decodes every image with ``decode=True``) and lists each problem: missing or
empty folder, unpaired image, pair of different sizes, unreadable file, bad list-file entry. It
never raises on bad data; ``DataCheckReport.ok`` says whether training can start.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .build import resolve_list_file, resolve_path
from .builtin import load_builtin_image
from .config import DataConfig, validate_data_config
from .errors import DataError
from .io import image_header, read_image
from .scan import ScanResult, scan_task_folders
from .tasks import task_family

_EXAMPLES = 3


@dataclass
class SetCheck:
    """The check of one training task or test set."""

    kind: str  # "train", "test" or "builtin"
    name: str
    task: str
    folders: list[str] = field(default_factory=list)
    pairs: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    expected_layout: str = ""  # set when a folder is missing or laid out wrongly

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class DataCheckReport:
    """All set checks of a config; ``format()`` renders the text ``prepare_data.py`` prints."""

    sets: list[SetCheck] = field(default_factory=list)
    missing_root: str = ""  # the config's data root, when it is not a folder

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sets)

    @property
    def problem_count(self) -> int:
        return sum(len(s.problems) for s in self.sets)

    def format(self, max_problems: int = 20) -> str:
        lines = []
        if self.missing_root:
            lines.append(f"PROBLEM: the data root {self.missing_root} is not a folder (relative "
                         f"to {Path.cwd()}): put the datasets there (README, Data and weights) "
                         "or give --data-root PATH")
        for s in self.sets:
            unit = "images" if s.task.startswith("denoise") and s.kind != "builtin" else "pairs"
            lines.append(f"[{s.kind}] {s.name} (task {s.task}): {s.pairs} {unit}")
            shown = s.folders if len(s.folders) <= 6 else s.folders[:4]
            lines += [f"    looked in {folder}" for folder in shown]
            if len(shown) < len(s.folders):
                lines.append(f"    ... and {len(s.folders) - len(shown)} more folders")
            for note in s.notes:
                lines.append(f"    note: {note}")
            for problem in s.problems[:max_problems]:
                lines.append(f"    PROBLEM: {problem}")
            if len(s.problems) > max_problems:
                lines.append(f"    ... and {len(s.problems) - max_problems} more problems")
            if s.expected_layout:
                lines.append("    expected layout:")
                lines += [f"      {line}" for line in s.expected_layout.splitlines()]
        failing = sum(not s.ok for s in self.sets)
        if self.ok:
            lines.append(f"OK: {len(self.sets)} sets checked, no problems.")
        else:
            lines.append(
                f"FAILED: {self.problem_count} problems in {failing} of {len(self.sets)} sets."
            )
        return "\n".join(lines)


#: Evaluation crops every test image to a multiple of this (``transforms.crop_to_multiple``).
EVAL_MULTIPLE = 16


def _check_files(scan: ScanResult, decode: bool, patch_size: int, min_side: int = 0
                 ) -> tuple[list[str], list[str]]:
    """Problems (unreadable, size mismatch, a side under ``min_side``) and notes (conversions,
    small images) of a scan."""
    problems: list[str] = []
    converted: list[str] = []
    small: list[str] = []
    for pair in scan.pairs:
        shapes = []
        for path in (pair.degraded, pair.clean):
            if not path:
                continue
            try:
                if decode:
                    read_image(path)  # raises on truncated or corrupt pixel data
                height, width, note = image_header(path)
            except DataError as error:
                problems.append(str(error))
                continue
            shapes.append((height, width))
            if min_side and min(height, width) < min_side:
                problems.append(f"{path} is {width}x{height}: evaluation crops each side to a "
                                f"multiple of {min_side}, which leaves nothing; a test image "
                                f"must be at least {min_side}x{min_side}")
            if note:
                converted.append(f"{path} ({note})")
        if len(shapes) == 2 and shapes[0] != shapes[1]:
            (h0, w0), (h1, w1) = shapes
            problems.append(
                f"pair of different sizes: {pair.degraded} is {w0}x{h0}, {pair.clean} is {w1}x{h1}"
            )
        if shapes and patch_size and min(shapes[-1]) < patch_size:
            small.append(pair.clean)
    notes = []
    if converted:
        examples = "; ".join(converted[:_EXAMPLES])
        notes.append(f"{len(converted)} images will be converted to 8-bit RGB, e.g. {examples}")
    if small:
        notes.append(
            f"{len(small)} images are smaller than the {patch_size} patch, e.g. {small[0]}"
        )
    return problems, notes


def _check_scan(kind: str, name: str, scan: ScanResult, decode: bool, patch_size: int
                ) -> SetCheck:
    check = SetCheck(kind=kind, name=name, task=scan.task, folders=list(scan.folders))
    check.pairs = len(scan.pairs)
    check.problems = list(scan.problems)
    check.notes = list(scan.notes)
    if not scan.pairs and not scan.problems:
        check.problems.append("no images found")
    if scan.layout_problem or not scan.pairs:
        check.expected_layout = scan.expected_layout
    min_side = EVAL_MULTIPLE if kind == "test" else 0
    file_problems, file_notes = _check_files(scan, decode, patch_size, min_side)
    check.problems += file_problems
    check.notes += file_notes
    return check


def check_data(cfg: DataConfig, decode: bool = False) -> DataCheckReport:
    """Check every training task, test set and built-in image of ``cfg``; never raises on bad
    data. ``decode=True`` decodes every image (slow) instead of reading headers only."""
    validate_data_config(cfg)
    report = DataCheckReport()
    if cfg.data_root and not Path(cfg.data_root).is_dir() and (cfg.train_tasks or cfg.test_sets):
        report.missing_root = cfg.data_root
    done: dict[tuple, SetCheck] = {}  # the three denoise tasks share their folder: check once

    def check_item(kind: str, name: str, roots: list[str], item, patch_size: int) -> SetCheck:
        roots = [resolve_path(r, cfg.data_root) for r in roots]
        try:
            list_file = resolve_list_file(item.list_file, cfg.data_root)
        except DataError as error:
            return SetCheck(kind=kind, name=name, task=item.task, problems=[str(error)])
        list_missing = getattr(item, "list_missing", "error")
        key = (
            kind,
            task_family(item.task),
            tuple(roots),
            list_file,
            item.layout,
            item.degraded_dir,
            item.clean_dir,
            list_missing,
        )
        if key not in done:
            scan = scan_task_folders(
                item.task,
                roots,
                list_file=list_file,
                layout=item.layout,
                degraded_dir=item.degraded_dir,
                clean_dir=item.clean_dir,
                list_missing=list_missing,
            )
            done[key] = _check_scan(kind, name, scan, decode, patch_size)
        return replace(done[key], name=name, task=item.task, notes=list(done[key].notes))

    for task_cfg in cfg.train_tasks:
        check = check_item("train", task_cfg.task, task_cfg.roots, task_cfg, cfg.patch_size)
        check.notes.insert(
            0, f"repeat x{task_cfg.repeat}: {check.pairs * task_cfg.repeat} samples per epoch"
        )
        report.sets.append(check)
    for test_cfg in cfg.test_sets:
        report.sets.append(check_item("test", test_cfg.name, [test_cfg.root], test_cfg, 0))
    if cfg.builtin.enabled:
        report.sets.append(_check_builtin(cfg))
    return report


def _check_builtin(cfg: DataConfig) -> SetCheck:
    names = [*cfg.builtin.train_images, *cfg.builtin.test_images]
    check = SetCheck(kind="builtin", name="builtin", task=",".join(cfg.builtin.tasks))
    check.folders = ["scikit-image package data"]
    for name in names:
        try:
            load_builtin_image(name)
            check.pairs += 1
        except DataError as error:
            check.problems.append(str(error))
    overlap = sorted(set(cfg.builtin.train_images) & set(cfg.builtin.test_images))
    if overlap:
        check.problems.append(f"images both in train and test: {', '.join(overlap)}")
    check.notes.append(
        f"train images: {', '.join(cfg.builtin.train_images)}; "
        f"test images: {', '.join(cfg.builtin.test_images)}"
    )
    return check
