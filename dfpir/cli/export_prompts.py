"""``dfpir export_prompts`` (``scripts/export_prompts.py``): write a table of prompt embeddings
for `prompts.encoder: file`.

Run it where the CLIP ViT-B/32 weights are (it never downloads):

    python scripts/export_prompts.py --out prompts_clip.pt
    python scripts/export_prompts.py --out prompts_clip.pt --clip-weights /path/to/ViT-B-32.pt
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..prompts import PromptConfig, all_sentences, build_encoder, save_prompt_table
from .common import run_cli


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir export_prompts`` / ``scripts/export_prompts.py``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Write a table of prompt embeddings for prompts.encoder: file.")
    parser.add_argument("--out", required=True, help="the .pt table to write")
    parser.add_argument("--encoder", default="clip", choices=["clip", "hashed"])
    parser.add_argument("--clip-weights", default=None, help="local CLIP ViT-B/32 weights file")
    parser.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    parser.add_argument("--sentence", action="append", default=[],
                        help="extra sentences to include (repeatable)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Embed every prompt sentence and save the table."""
    encoder = build_encoder(PromptConfig(encoder=args.encoder, clip_weights=args.clip_weights,
                                         clip_precision=args.precision))
    sentences = all_sentences() + args.sentence
    save_prompt_table(encoder, sentences, args.out)
    print(f"wrote {len(sentences)} {encoder.name} embeddings to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir export_prompts``: 0, or 2 when the encoder cannot run (no CLIP weights)."""
    return run_cli(build_parser(prog), run, argv)
