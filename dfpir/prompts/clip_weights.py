"""The CLIP ViT-B/32 (OpenAI) weights of the ``clip`` prompt encoder: a local file when there is
one (``prompts.clip_weights``, open_clip's Hugging Face cache, OpenAI's ``clip`` cache), else
downloaded once into the Hugging Face cache, as open_clip does on first use.

Offline, the download fails with one ``error:`` line naming the two local options:
``prompts.clip_weights: PATH`` or ``prompts.encoder: file`` (a table written by ``dfpir
export_prompts`` where the weights are). ``HF_HUB_OFFLINE=1`` and ``HF_HOME`` work as for
every Hugging Face download.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import PromptError

__all__ = ["CLIP_HF_FILES", "CLIP_HF_REPO", "ClipHub", "download_clip_weights",
           "find_clip_weights"]

logger = logging.getLogger(__name__)

CLIP_HF_REPO = "timm/vit_base_patch32_clip_224.openai"  # open_clip's source of 'openai'
CLIP_HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CLIP_OPENAI_FILE = Path("~/.cache/clip/ViT-B-32.pt")


@dataclass(frozen=True)
class ClipHub:
    """Where the weights come from: the Hugging Face endpoint and cache (``None``: the
    library's defaults, i.e. ``HF_ENDPOINT``/``HF_HOME``; tests point them at a local fake)."""

    endpoint: str | None = None
    cache_dir: str | None = None


OFFLINE_HELP = (
    "Without internet, give the weights as a local file: `prompts.clip_weights: PATH` (a copy "
    f"of {CLIP_HF_FILES[0]} from the Hugging Face repo {CLIP_HF_REPO}, or OpenAI's "
    "ViT-B-32.pt), or use `prompts.encoder: file` with a table written by `dfpir "
    "export_prompts --out FILE` on a machine that has them; `prompts.encoder: hashed` runs "
    "offline but is not CLIP (tests and the demo)."
)


def find_clip_weights(weights: str | os.PathLike | None = None, *, download: bool = True,
                      hub: ClipHub = ClipHub()) -> Path:
    """The CLIP ViT-B/32 (OpenAI) weights file: ``weights`` if given (it must exist), else
    the Hugging Face cache, else OpenAI's ``clip`` cache, else (``download``) downloaded into
    the Hugging Face cache once. Raises an error saying what to do when there are none."""
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        raise PromptError(f"CLIP weights file {path} does not exist (prompts."
                               "clip_weights). " + OFFLINE_HELP)
    from huggingface_hub import try_to_load_from_cache

    for filename in CLIP_HF_FILES:
        cached = try_to_load_from_cache(CLIP_HF_REPO, filename, cache_dir=hub.cache_dir)
        if isinstance(cached, str) and os.path.isfile(cached):
            return Path(cached)
    openai_file = CLIP_OPENAI_FILE.expanduser()
    if openai_file.is_file():
        return openai_file
    if not download:
        raise PromptError("no CLIP ViT-B/32 weights on this machine. " + OFFLINE_HELP)
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise PromptError("no CLIP ViT-B/32 weights on this machine, and HF_HUB_OFFLINE is "
                          "set, so they are not downloaded. " + OFFLINE_HELP)
    return download_clip_weights(hub)


def download_clip_weights(hub: ClipHub = ClipHub()) -> Path:
    """Download the weights into the Hugging Face cache (open_clip's file), check that they
    load, say where they are. A corrupt download is removed and is an error."""
    from huggingface_hub import hf_hub_download

    name = CLIP_HF_FILES[0]
    logger.warning("prompts: no CLIP ViT-B/32 weights here; downloading %s from the Hugging "
                   "Face repo %s (about 600 MB, once; cached for later runs)", name,
                   CLIP_HF_REPO)
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retries' warnings: the one error below says it all
    try:
        path = Path(hf_hub_download(CLIP_HF_REPO, name, endpoint=hub.endpoint,
                                    cache_dir=hub.cache_dir))
    except Exception as err:  # noqa: BLE001 (offline, refused, HTTP error: all one answer)
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise PromptError(f"could not download the CLIP ViT-B/32 weights ({CLIP_HF_REPO}"
                               f"/{name}): {reason}. " + OFFLINE_HELP) from None
    finally:
        hub_log.setLevel(level)
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            if not list(handle.keys()):
                raise ValueError("it holds no tensors")
    except Exception as err:  # noqa: BLE001 (any unreadable download)
        blob = path.resolve()
        for stale in {path, blob}:  # the file this download wrote (a link and its blob)
            stale.unlink(missing_ok=True)
        raise PromptError(f"the downloaded CLIP weights {path} cannot be read ({err}); "
                               "the file was removed: run the command again") from None
    logger.warning("prompts: CLIP ViT-B/32 weights saved in %s", path)
    return path
