"""``dfpir app`` (``scripts/app.py``): a local web page to restore photos (gradio, the ``app``
extra; ``dfpir.app`` builds the page).

    dfpir app                                   # the demo model, if runs/demo exists
    dfpir app --ckpt runs/five_task/checkpoints/best.pt --device cuda
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
from collections.abc import Sequence

import torch

from ..app.server import DEMO_CHECKPOINT, build_app, close_app, load_bundle, require_gradio
from ..config import ConfigError
from .common import add_config, add_device, int_in, run_cli

__all__ = ["build_parser", "main", "run"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir app`` / ``scripts/app.py``."""
    parser = argparse.ArgumentParser(prog=prog or "app.py", description="A local web page to "
                                     "restore photos with a trained DFPIR (gradio).")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--ckpt", help=f"checkpoint (default: {DEMO_CHECKPOINT} if it exists)")
    which.add_argument("--onnx", metavar="FILE", help="a per-task ONNX export instead")
    add_config(parser, help="experiment YAML (default: the checkpoint's config)")
    add_device(parser)
    parser.add_argument("--tile", type=int_in(0), default=512,
                        help="tile size for large images (0 = whole image); default 512")
    parser.add_argument("--tile-overlap", type=int_in(0), default=32, help="tile overlap (pixels)")
    parser.add_argument("--threads", type=int_in(1), default=None, help="CPU threads")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int_in(1, 65535), default=7860)
    parser.add_argument("--share", action="store_true",
                        help="also open a public gradio share link (off by default)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Check the model and options, then serve the page until interrupted."""
    require_gradio()
    ckpt = args.ckpt
    if ckpt is None and args.onnx is None:
        if not DEMO_CHECKPOINT.is_file():
            raise ConfigError(
                f"no model: give --ckpt CHECKPOINT (or --onnx FILE), or train the demo model "
                f"first with `python scripts/train.py --config configs/demo.yaml` (writes "
                f"{DEMO_CHECKPOINT})")
        ckpt = DEMO_CHECKPOINT
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    check_port(args.host, args.port)
    bundle = load_bundle(ckpt, args.onnx, args.config, args.overrides, args.device or "auto",
                         args.tile, args.tile_overlap, args.threads)
    app = build_app(bundle)
    print(f"serving {bundle.describe()} on http://{args.host}:{args.port} (Ctrl-C stops)")
    # SIGTERM (kill, systemd, SLURM) ends it as Ctrl-C does: through the cleanup below
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        app.queue().launch(server_name=args.host, server_port=args.port, share=args.share,
                           allowed_paths=[str(app.out_root)], show_error=True)
    finally:  # the restored uploads are the app's own files: gone when it stops
        signal.signal(signal.SIGTERM, previous)
        close_app(app)
    return 0


def check_port(host: str, port: int) -> None:
    """Raise ``ConfigError`` unless ``host:port`` can be bound now: a port in use is said
    before the model loads and before the app makes its folder of results."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as err:
        why = err.strerror or str(err)
        if err.errno == errno.EADDRNOTAVAIL or (err.errno or 0) < 0:  # < 0: getaddrinfo
            raise ConfigError(f"--host {host} is not an address of this machine ({why}); give "
                              "127.0.0.1 (this machine only) or 0.0.0.0 (every network)"
                              ) from None
        raise ConfigError(f"--port {port} on --host {host} cannot be used ({why}); give "
                          "another --port") from None


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir app``: serves until interrupted; 2 for a usage or model error."""
    return run_cli(build_parser(prog), run, argv)
