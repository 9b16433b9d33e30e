"""The standard folder layouts of each task family, declared as data: which sub-folders hold the
degraded and clean images and how a degraded file name leads to its clean partner. ``scan``
finds the pairs on disk by them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

LAYOUT_MODES: tuple[str, ...] = ("auto", "flat", "nested")
# What a list file naming files that are not on disk does: "error" (the default), "present"
# (use the listed files that exist, as the release's denoise loader does), "scan" (ignore the
# list and use every pair found in the folders).
LIST_MISSING_MODES: tuple[str, ...] = ("error", "present", "scan")
_MISSING_EXAMPLES = 5


@dataclass(frozen=True)
class ImagePair:
    """One sample: its name (the degraded file's stem), the clean file, the degraded file.

    ``degraded`` is "" for denoising, whose degraded image is synthesised from the clean one.
    In the nested (per-sequence) layout the name is "<sequence>_<stem>" to keep it unique.
    """

    name: str
    clean: str
    degraded: str = ""


@dataclass(frozen=True)
class FamilyLayout:
    """Where a degradation family keeps its images and how degraded names map to clean names."""

    folder_pairs: tuple[tuple[str, str], ...]  # candidate (degraded, clean) sub-folder names
    recursive: bool  # degraded/clean folders may hold sub-folders (OTS part1/ ... part4/)
    one_to_one: bool  # every clean image should have a degraded partner
    expected: str  # the layout, as a tree, for error messages


LAYOUTS: dict[str, FamilyLayout] = {
    "denoise": FamilyLayout(
        folder_pairs=(),
        recursive=False,
        one_to_one=True,
        expected=(
            "<root>/                  clean images only (BSD400 + WED to train, CBSD68 to test);\n"
            "  0001.png               noise is synthesised on the fly\n"
            "  ..."
        ),
    ),
    "derain": FamilyLayout(
        folder_pairs=(("rainy", "gt"), ("input", "target")),
        recursive=False,
        one_to_one=True,
        expected=(
            "<root>/                  Rain100L / Rain13K training\n"
            "  rainy/rain-1.png       degraded\n"
            "  gt/norain-1.png        clean: same stem, or 'no' + stem\n"
            "or, for test sets (Rain100L test):\n"
            "<root>/\n"
            "  input/rain-1.png\n"
            "  target/norain-1.png"
        ),
    ),
    "dehaze": FamilyLayout(
        folder_pairs=(("synthetic", "original"), ("input", "target")),
        recursive=True,
        one_to_one=False,
        expected=(
            "<root>/                           RESIDE OTS training\n"
            "  synthetic/<id>_<A>_<beta>.jpg   hazy (sub-folders such as part1/ allowed)\n"
            "  original/<id>.jpg               clean: stem before the first '_', any extension\n"
            "or, for test sets (SOTS outdoor):\n"
            "<root>/\n"
            "  input/0001_0.8_0.2.jpg\n"
            "  target/0001.png"
        ),
    ),
    "deblur": FamilyLayout(
        folder_pairs=(("blur", "sharp"), ("input", "target")),
        recursive=False,
        one_to_one=True,
        expected=(
            "<root>/                  GoPro, flattened (train/ or test/)\n"
            "  blur/<name>.png\n"
            "  sharp/<name>.png       same name\n"
            "or the original GoPro_Large layout, one folder per sequence:\n"
            "<root>/\n"
            "  GOPR0372_07_00/blur/000047.png\n"
            "  GOPR0372_07_00/sharp/000047.png\n"
            "  ..."
        ),
    ),
    "lowlight": FamilyLayout(
        folder_pairs=(("low", "high"), ("input", "target")),
        recursive=False,
        one_to_one=True,
        expected=(
            "<root>/                  LOL (our485/ to train, eval15/ to test)\n"
            "  low/<name>.png\n"
            "  high/<name>.png        same name"
        ),
    ),
}


def clean_stem_candidates(family: str, degraded_stem: str) -> list[str]:
    """Stems the clean partner of a degraded image may have, most likely first."""
    if family == "dehaze":
        return [degraded_stem.split("_")[0], degraded_stem]
    if family == "derain":
        candidates = [degraded_stem]
        if degraded_stem.lower().startswith("rain"):
            candidates.append("no" + degraded_stem)
        return candidates
    return [degraded_stem]
