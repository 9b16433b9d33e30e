"""Check that the datasets of a config are where it says, and optionally fill the decode cache.

    python scripts/prepare_data.py --check --config configs/three_task.yaml
    python scripts/prepare_data.py --check --decode --config CONFIG.yaml   # decode every image
    python scripts/prepare_data.py --cache /fast/disk/dfpir_cache --config CONFIG.yaml

Only the ``data:`` section of the YAML file is read. Exit code 0 when no problem was found,
1 when the check found problems, 2 for a bad command line or config.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dfpir.data import (
    builtin_demo,
    check_data,
    data_config_from_yaml,
    default_five_task,
    default_three_task,
    fill_cache,
    training_image_paths,
)
from dfpir.data.errors import DataError

PRESETS = {
    "three_task": default_three_task,
    "five_task": default_five_task,
    "builtin_demo": builtin_demo,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="YAML file with a data: section")
    source.add_argument("--preset", choices=sorted(PRESETS), help="a built-in data config")
    parser.add_argument("--data-root", help="override data.data_root")
    parser.add_argument("--check", action="store_true", help="list pairs and problems")
    parser.add_argument("--decode", action="store_true", help="with --check: decode every image")
    parser.add_argument("--cache", metavar="DIR", help="decode the training images into DIR")
    args = parser.parse_args(argv)
    if not (args.check or args.cache):
        parser.error("nothing to do: give --check and/or --cache DIR")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        cfg = (
            data_config_from_yaml(args.config)
            if args.config
            else PRESETS[args.preset or "three_task"]()
        )
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.data_root is not None:
        cfg.data_root = args.data_root
    if args.check:
        report = check_data(cfg, decode=args.decode)
        print(report.format())
        if not report.ok:
            return 1
    if args.cache:
        try:
            paths = training_image_paths(cfg)
        except DataError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        count = fill_cache(paths, args.cache, progress=True)
        print(f"cached {count} images in {args.cache}; set data.cache_dir: {args.cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
