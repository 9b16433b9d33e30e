"""``dfpir export_prompts`` (``scripts/export_prompts.py``): write a table of prompt embeddings
for `prompts.encoder: file`.

Run it where the CLIP ViT-B/32 weights are (it never downloads):

    python scripts/export_prompts.py --out prompts_clip.pt
    python scripts/export_prompts.py --out prompts_clip.pt --clip-weights /path/to/ViT-B-32.pt

The table records the device, dtype, torch and open_clip versions that made it; the `file`
encoder prints them when it loads the table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..outputs import claim_file
from ..paths import not_a_file
from ..prompts import PromptConfig, PromptError, all_sentences, build_encoder, save_prompt_table
from ..prompts.clip_weights import CLIP_HF_FILES, CLIP_HF_REPO
from .common import run_cli


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir export_prompts`` / ``scripts/export_prompts.py``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Write a table of prompt embeddings for prompts.encoder: file.")
    parser.add_argument("--out", required=True, help="the .pt table to write")
    parser.add_argument("--encoder", default="clip", choices=["clip", "hashed"])
    parser.add_argument("--clip-weights", default=None, help="local CLIP ViT-B/32 weights file")
    parser.add_argument("--precision", default="fp16", choices=["fp16", "fp32"],
                        help="fp16: OpenAI's mixed precision, as the release (default)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where CLIP runs (auto: a GPU when there is one, as the release)")
    parser.add_argument("--sentence", action="append", default=[],
                        help="extra sentences to include (repeatable)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the --out file when it exists (without it: an error)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Embed every prompt sentence and save the table."""
    for sentence in args.sentence:
        if not sentence.strip():
            raise PromptError("--sentence is empty; a prompt needs words (restore -p refuses an "
                              "empty one)")
    claim_file(args.out, "--out", args.overwrite, suffix=".pt",
               inputs={"--clip-weights": args.clip_weights})
    if args.clip_weights is not None:
        weights = Path(args.clip_weights).expanduser()
        if args.encoder != "clip":
            raise PromptError(f"--clip-weights goes with --encoder clip, not {args.encoder}")
        if not weights.is_file():
            raise PromptError(f"--clip-weights {weights} {not_a_file(weights) or 'is no file'};"
                              " expected the CLIP ViT-B/32 weights (open_clip's "
                              "open_clip_model.safetensors or OpenAI's ViT-B-32.pt)")
    try:
        encoder = build_encoder(PromptConfig(encoder=args.encoder,
                                             clip_weights=args.clip_weights,
                                             clip_precision=args.precision,
                                             clip_device=args.device))
    except PromptError as err:  # the advice in this command's words: a flag, not config keys
        first = str(err).split(" Without internet,")[0]
        raise PromptError(f"{first} Without internet, give the weights as a local file: "
                          f"--clip-weights PATH ({CLIP_HF_FILES[0]} from the Hugging Face "
                          f"repo {CLIP_HF_REPO}, or OpenAI's ViT-B-32.pt)") from None
    sentences = list(dict.fromkeys(all_sentences() + args.sentence))  # each once
    repeated = len(all_sentences()) + len(args.sentence) - len(sentences)
    if repeated:
        print(f"note: {repeated} --sentence value(s) repeat a sentence already in the table; "
              "each is embedded once")
    try:
        save_prompt_table(encoder, sentences, args.out)
    except OSError as err:
        raise PromptError(f"cannot write {args.out}: {err}") from err
    print(f"wrote {len(sentences)} {encoder.name} embeddings to {args.out}")
    describe = getattr(encoder, "describe", None)
    if describe is not None:
        print("made with: " + ", ".join(f"{k} {v}" for k, v in describe().items()))
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir export_prompts``: 0, or 2 when the encoder cannot run (no CLIP weights)."""
    return run_cli(build_parser(prog), run, argv)
