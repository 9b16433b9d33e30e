"""GoPro's per-sequence folders (``GoPro_Large/train/<sequence>/{blur,sharp}/<frame>.png``) as
the flattened layout the release's list names (``blur/<sequence>_<frame>.png``,
``sharp/<sequence>_<frame>.png``). The user's files are copied or linked, never moved; a file
already at its flattened place is left as it is."""

from __future__ import annotations

import filecmp
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import not_a_file
from .errors import DataError

__all__ = ["FlattenReport", "flatten_gopro"]

PAIR = ("blur", "sharp")


@dataclass
class FlattenReport:
    """What ``flatten_gopro`` did: files written (each pair is two), pairs left as they were,
    and, with a list, how many of its names the flattened folder now holds."""

    written: int = 0
    linked: int = 0  # of ``written``, hard links (the rest are copies)
    kept: int = 0
    unpaired: list[str] = field(default_factory=list)  # blur frames without a sharp one
    clashes: list[str] = field(default_factory=list)  # pairs skipped: another file is there
    listed: int | None = None
    listed_present: int | None = None
    missing: list[str] = field(default_factory=list)  # listed names not there (first few)
    skipped: list[str] = field(default_factory=list)  # folders without blur/ and sharp/


def _pairs(source: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """The (flat name, blur, sharp) frames of every sequence, and the folders skipped for
    holding no blur/ and sharp/ folders."""
    pairs, skipped = [], []
    for sequence in sorted(p for p in source.iterdir() if p.is_dir()):
        blur, sharp = sequence / PAIR[0], sequence / PAIR[1]
        if not (blur.is_dir() and sharp.is_dir()):
            skipped.append(sequence.name)
            continue
        for frame in sorted(blur.iterdir()):
            if frame.is_file():
                pairs.append((f"{sequence.name}_{frame.name}", frame, sharp / frame.name))
    return pairs, skipped


def flatten_gopro(source: str | os.PathLike, dest: str | os.PathLike, link: bool = False,
                  list_file: str | os.PathLike | None = None) -> FlattenReport:
    """Copy (or, with ``link``, hard-link, falling back to a copy across file systems) every
    blur/sharp pair of ``source``'s sequences into ``dest/blur`` and ``dest/sharp`` under the
    flattened name. With ``list_file`` (one name a line), count the listed names present."""
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        raise DataError(f"GoPro folder {source} {not_a_file(source) or 'is a file'}; expected "
                        "GoPro_Large/train "
                        "(or test) with one folder per sequence")
    pairs, skipped = _pairs(source)
    if not pairs:
        raise DataError(f"no GoPro sequences in {source}: expected <sequence>/blur/<frame>.png "
                        "and <sequence>/sharp/<frame>.png")
    names: dict[str, Path] = {}
    for name, blur, _ in pairs:  # SEQ_A/1_000001.png and SEQ_A_1/000001.png: one name
        if name in names:
            raise DataError(f"{names[name]} and {blur} both flatten to {name}; rename one of "
                            "the two sequence folders (nothing was written)")
        names[name] = blur
    report = FlattenReport(skipped=skipped)
    for name, blur, sharp in pairs:
        if not sharp.is_file():
            report.unpaired.append(str(blur))
            continue
        targets = [(blur, dest / PAIR[0] / name), (sharp, dest / PAIR[1] / name)]
        there = [(origin, target) for origin, target in targets if target.exists()]
        if len(there) == len(targets):
            report.kept += 1
            continue
        other = [t for o, t in there if not filecmp.cmp(o, t, shallow=False)]
        if other:  # a file of another origin: not paired with this frame's partner
            report.clashes.append(str(other[0]))
            continue
        for origin, target in targets:
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if link:
                try:
                    os.link(origin, target)
                    report.linked += 1
                except OSError:  # another file system: a copy instead
                    shutil.copy2(origin, target)
            else:
                shutil.copy2(origin, target)
            report.written += 1
    if list_file is not None:
        names = [n.strip() for n in Path(list_file).read_text().splitlines() if n.strip()]
        present = {p.name for p in (dest / PAIR[0]).iterdir()} if (dest / PAIR[0]).is_dir() \
            else set()
        report.listed = len(names)
        absent = [n for n in names if Path(n).name not in present]
        report.listed_present = len(names) - len(absent)
        report.missing = absent[:5]
    return report
