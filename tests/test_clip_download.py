"""The ``clip`` encoder's weights on first use, through a fake Hugging Face hub served on the
loopback (the same ``hf_hub_download`` path as the real one): downloaded once, then taken from
the cache; an offline machine gets one ``error:`` line naming the two local options; a corrupt
download is removed and is an error. No test touches the network."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dfpir.prompts import CLIP_HF_FILES, CLIP_HF_REPO, ClipHub, PromptError, find_clip_weights


class FakeHub:
    """Serves one file of one repo like the Hub's ``resolve`` endpoint (HEAD and GET)."""

    def __init__(self, body: bytes) -> None:
        self.body, self.requests = body, []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _headers(self) -> bool:
                hub.requests.append((self.command, self.path))
                if not self.path.endswith(f"/{CLIP_HF_REPO}/resolve/main/{CLIP_HF_FILES[0]}"):
                    self.send_response(404)
                    self.end_headers()
                    return False
                self.send_response(200)
                self.send_header("X-Repo-Commit", "0" * 40)
                self.send_header("ETag", f'"{hashlib.sha256(hub.body).hexdigest()}"')
                self.send_header("Content-Length", str(len(hub.body)))
                self.end_headers()
                return True

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
                self._headers()

            def do_GET(self) -> None:  # noqa: N802
                if self._headers():
                    self.wfile.write(hub.body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def downloads(self) -> int:
        return sum(1 for command, path in self.requests
                   if command == "GET" and path.endswith(CLIP_HF_FILES[0]))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def weights_file(tmp_path) -> bytes:
    path = tmp_path / "tiny.safetensors"
    save_file({"text_projection": torch.zeros(4, 2)}, str(path))
    return path.read_bytes()


@pytest.fixture
def no_backoff(monkeypatch):
    """The hub client waits 1+2+4+8+8 s between its retries; a test need not."""
    import huggingface_hub.utils._http as http_utils

    monkeypatch.setattr(http_utils.time, "sleep", lambda _s: None)


def test_first_use_downloads_then_the_cache_serves(tmp_path, weights_file, monkeypatch, caplog):
    monkeypatch.setattr("dfpir.prompts.clip_weights.CLIP_OPENAI_FILE", tmp_path / "none.pt")
    hub = FakeHub(weights_file)
    try:
        place = ClipHub(endpoint=hub.url, cache_dir=str(tmp_path / "cache"))
        with caplog.at_level("WARNING", logger="dfpir"):
            first = find_clip_weights(hub=place)
        assert first.read_bytes() == weights_file and hub.downloads() == 1
        assert str(tmp_path / "cache") in str(first)
        said = " ".join(r.getMessage() for r in caplog.records)
        assert "downloading" in said and f"saved in {first}" in said
    finally:
        hub.close()
    assert find_clip_weights(hub=place) == first  # the server is gone: the cache answers
    assert hub.downloads() == 1


def test_offline_is_one_error_line_with_the_two_local_options(tmp_path, monkeypatch, capsys,
                                                             no_backoff):
    monkeypatch.setattr("dfpir.prompts.clip_weights.CLIP_OPENAI_FILE", tmp_path / "none.pt")
    hub = FakeHub(b"")
    hub.close()  # nothing listens there now: an offline machine
    offline = ClipHub(endpoint=hub.url, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(PromptError, match="could not download") as info:
        find_clip_weights(hub=offline)
    message = str(info.value)
    assert "\n" not in message
    assert "prompts.clip_weights: PATH" in message and "prompts.encoder: file" in message
    with pytest.raises(PromptError, match="no CLIP ViT-B/32 weights on this machine"):
        find_clip_weights(download=False, hub=offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # said at once, no download tried
    with pytest.raises(PromptError, match="HF_HUB_OFFLINE is set, so they are not downloaded"):
        find_clip_weights(hub=offline)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # through a command: one error: line, exit 2, nothing written
    import dfpir.prompts.encoders as encoders
    from dfpir.cli import main as dfpir

    monkeypatch.setattr(encoders, "find_clip_weights",
                        lambda weights=None: find_clip_weights(weights, hub=offline))
    out = tmp_path / "table.pt"
    assert dfpir(["export_prompts", "--encoder", "clip", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and "--clip-weights PATH" in errors[0], err  # its own flag
    assert "Traceback" not in "\n".join(err) and not out.exists()


def test_a_corrupt_download_is_removed_and_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr("dfpir.prompts.clip_weights.CLIP_OPENAI_FILE", tmp_path / "none.pt")
    hub = FakeHub(b"not a safetensors file at all")
    try:
        place = ClipHub(endpoint=hub.url, cache_dir=str(tmp_path / "cache"))
        with pytest.raises(PromptError, match="cannot be read.*removed"):
            find_clip_weights(hub=place)
    finally:
        hub.close()
    left = [p for p in Path(tmp_path / "cache").rglob("*")
            if p.is_file() and ("blobs" in p.parts or "snapshots" in p.parts)]
    assert not left, left  # neither the snapshot link nor its blob


def test_a_named_file_that_is_missing_says_so(tmp_path):
    with pytest.raises(PromptError, match=r"does not exist \(prompts.clip_weights\)"):
        find_clip_weights(tmp_path / "missing.safetensors")
