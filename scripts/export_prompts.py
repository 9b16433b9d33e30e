"""Write a table of prompt embeddings for `prompts.encoder: file`.

Run it where the CLIP ViT-B/32 weights are (it never downloads):

    python scripts/export_prompts.py --out prompts_clip.pt
    python scripts/export_prompts.py --out prompts_clip.pt --clip-weights /path/to/ViT-B-32.pt
"""

from __future__ import annotations

import argparse
import sys

from dfpir.prompts import PromptConfig, PromptError, all_sentences, build_encoder, save_prompt_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the .pt table to write")
    parser.add_argument("--encoder", default="clip", choices=["clip", "hashed"])
    parser.add_argument("--clip-weights", default=None, help="local CLIP ViT-B/32 weights file")
    parser.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    parser.add_argument("--sentence", action="append", default=[],
                        help="extra sentences to include (repeatable)")
    args = parser.parse_args(argv)
    try:
        encoder = build_encoder(PromptConfig(encoder=args.encoder, clip_weights=args.clip_weights,
                                             clip_precision=args.precision))
    except PromptError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sentences = all_sentences() + args.sentence
    save_prompt_table(encoder, sentences, args.out)
    print(f"wrote {len(sentences)} {encoder.name} embeddings to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
