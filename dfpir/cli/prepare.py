"""``dfpir prepare`` (``scripts/prepare_data.py``): check that the datasets of a config are
where it says, and optionally fill the decode cache.

    dfpir prepare --check --config configs/three_task.yaml
    dfpir prepare --check --decode --config CONFIG.yaml   # decode every image
    dfpir prepare --check --preset three_task --set data.data_root=/datasets/allinone
    dfpir prepare --cache /fast/disk/dfpir_cache --config CONFIG.yaml

Only the ``data:`` section of the config is read (``--set data.*`` overrides it). Exit status 0
when no problem was found, 1 when the check found problems, 2 for a bad command line or config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from ..config import apply_override, load_raw
from ..data import (
    CacheWriteError,
    builtin_demo,
    check_data,
    data_config_from_dict,
    default_five_task,
    default_three_task,
    fill_cache,
    training_image_paths,
)
from ..data.build import resolve_list_file
from ..data.config import DataConfig
from ..data.gopro import flatten_gopro
from ..errors import ConfigError
from ..outputs import check_output_place
from ..paths import some_names
from .common import run_cli

__all__ = ["PRESETS", "build_parser", "load_data_config", "main", "run"]

PRESETS = {
    "three_task": default_three_task,
    "five_task": default_five_task,
    "builtin_demo": builtin_demo,
}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir prepare`` / ``scripts/prepare_data.py``."""
    parser = argparse.ArgumentParser(
        prog=prog or "prepare_data.py",
        description="Check that the datasets of a config are where it says, and optionally "
                    "fill the decode cache.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="YAML file with a data: section")
    source.add_argument("--preset", choices=sorted(PRESETS), help="a built-in data config")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a data value, e.g. "
                        "data.data_root=/datasets (repeatable)")
    parser.add_argument("--data-root", help="the same as --set data.data_root=DIR")
    parser.add_argument("--check", action="store_true", help="list pairs and problems")
    parser.add_argument("--decode", action="store_true", help="with --check: decode every image")
    parser.add_argument("--cache", metavar="DIR", help="decode the training images into DIR")
    gopro = parser.add_argument_group("GoPro's per-sequence folders as the release's flat layout")
    gopro.add_argument("--flatten-gopro", metavar="SRC", help="GoPro_Large/train (or test): "
                       "copy its <sequence>/blur|sharp/<frame>.png pairs to --into as "
                       "blur|sharp/<sequence>_<frame>.png (never moves or overwrites a file)")
    gopro.add_argument("--into", metavar="DIR", help="with --flatten-gopro: the flattened "
                       "folder, e.g. data/Train/Deblur")
    gopro.add_argument("--link", action="store_true", help="with --flatten-gopro: hard links "
                       "instead of copies (same file system; no extra space)")
    return parser


def load_data_config(config: str | None, preset: str | None,
                     overrides: Sequence[str] = ()) -> DataConfig:
    """The ``data:`` section of ``config`` (or of a preset, default three_task) with the
    ``data.*`` overrides applied; raises ``ConfigError`` for anything else."""
    origin: dict[str, str] = {}
    if config:
        raw = load_raw(config, origin)
    else:
        raw = {"data": dataclasses.asdict(PRESETS[preset or "three_task"]())}
    for override in overrides:
        if not override.strip().startswith("data."):
            raise ConfigError(f"--set {override}: prepare reads only the data: section "
                              "(give data.KEY=VALUE)")
        apply_override(raw, override, origin)
    return data_config_from_dict(raw.get("data"), origin)


def run(args: argparse.Namespace) -> int:
    """Check and/or cache; returns the exit status."""
    logging.getLogger("dfpir").setLevel(logging.WARNING)
    overrides = list(args.overrides)
    if args.data_root is not None:
        overrides.append(f"data.data_root={json.dumps(args.data_root)}")
    cfg = load_data_config(args.config, args.preset, overrides)
    root = Path(cfg.data_root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"data root {cfg.data_root} is a file; expected the folder that holds "
                          "the datasets (--data-root, data.data_root)")
    if args.cache:
        check_output_place(args.cache, "dir", "--cache")
    if args.flatten_gopro:
        flatten(args)
    if args.check:
        report = check_data(cfg, decode=args.decode)
        print(report.format())
        if not report.ok:
            return 1
    if args.cache:
        paths = training_image_paths(cfg)
        try:
            written, held = fill_cache(paths, args.cache, progress=True)
        except CacheWriteError as err:
            raise CacheWriteError(f"--cache: {err}; the images cached before it are kept. Free "
                                  "some space or choose another --cache") from None
        if not paths:
            print(f"nothing to cache: the config has no training images on disk (the built-in "
                  f"set is generated in memory); {args.cache} was not made")
        else:
            print(f"cached {written} image(s) in {args.cache}"
                  + (f" ({held} were there already)" if held else "")
                  + f"; set data.cache_dir: {args.cache}")
    return 0


def flatten(args: argparse.Namespace) -> None:
    """``--flatten-gopro SRC --into DIR``: the pairs written, and the release's training list
    checked against the result (``release:train_gopro.txt``) when SRC is a train folder."""
    if not args.into:
        raise ConfigError("--flatten-gopro needs --into DIR (e.g. data/Train/Deblur)")
    check_output_place(args.into, "dir", "--into")
    source, into = Path(args.flatten_gopro).resolve(), Path(args.into).resolve()
    if into == source or source in into.parents:
        raise ConfigError(f"--into {args.into} is inside the GoPro folder {args.flatten_gopro}: "
                          "the flattened copy would be written into the dataset; choose a "
                          "folder outside it")
    listing = (resolve_list_file("release:train_gopro.txt", ".")
               if "train" in Path(args.flatten_gopro).name.lower() else None)
    report = flatten_gopro(args.flatten_gopro, args.into, link=args.link, list_file=listing)
    if report.skipped:
        print(f"note: {len(report.skipped)} folder(s) of {args.flatten_gopro} skipped, no blur/ "
              f"and sharp/ in them: {some_names(report.skipped, 5)}")
    copied = report.written - report.linked
    how = (f"{report.linked} file(s) linked" + (f", {copied} copied (another file system)"
                                                 if copied else "")
           if args.link else f"{report.written} file(s) copied")
    print(f"flattened {args.flatten_gopro} into {args.into}: {how}, "
          f"{report.kept} pair(s) already there")
    if report.unpaired:
        print(f"note: {len(report.unpaired)} blur frame(s) without a sharp frame of the same "
              f"name skipped: {some_names(report.unpaired, 3)}")
    if report.clashes:
        print(f"note: {len(report.clashes)} pair(s) skipped: a different file already has the "
              f"name in {args.into} (kept as it is): {some_names(report.clashes, 3)}")
    if report.listed is not None:
        missing = (f"; missing e.g. {', '.join(report.missing)}" if report.missing else "")
        print(f"the release's train_gopro.txt names {report.listed} pairs; {args.into} holds "
              f"{report.listed_present} of them{missing}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir prepare``: 0 when no problem was found, 1 when the check found problems, 2 for
    a bad command line or config (or data the cache cannot read)."""
    parser = build_parser(prog)

    def checked(args: argparse.Namespace) -> int:
        if not (args.check or args.cache or args.flatten_gopro):
            parser.error("nothing to do: give --check, --cache DIR and/or --flatten-gopro SRC "
                         "--into DIR")
        if (args.into or args.link) and not args.flatten_gopro:
            parser.error(f"{'--into' if args.into else '--link'} goes with --flatten-gopro SRC")
        return run(args)

    return run_cli(parser, checked, argv)
