"""``dfpir compare_release`` against a stand-in for the release's ``net/model.py`` (the real one
is not shipped): the loading, the stubbed imports, the weight transfer and the report."""

from __future__ import annotations

import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import tiny_config

from dfpir.cli.compare_release import main
from dfpir.errors import ConfigError
from dfpir.perf.release_compare import compare_with_release, load_release_class


def _fake_release(root: Path, config_fields: dict | None = None, scale: float = 1.0) -> Path:
    """A clone-shaped folder whose model is ours under the release's parameter names, its output
    times ``scale`` (so a difference can be planted)."""
    (root / "net").mkdir(parents=True)
    (root / "net" / "model.py").write_text(textwrap.dedent(f"""
        import clip  # the release imports both; neither is needed for the network
        from huggingface_hub import PyTorchModelHubMixin
        import torch
        from dfpir.models import DFPIR, DFPIRConfig
        from dfpir.models.checkpoint import release_to_ours

        class ChannelShuffle_skip_textguaid(torch.nn.Module):
            def __init__(self, device="cuda:1"):
                super().__init__()
                self.inner = DFPIR(DFPIRConfig(**{config_fields or {}!r}))

            def load_state_dict(self, state, strict=True):
                return self.inner.load_state_dict(release_to_ours(state), strict=strict)

            def forward(self, x, prompt):
                return self.inner(x, prompt) * {scale}
    """))
    return root


def test_compare_reports_equal_outputs_and_timings(tmp_path):
    config = tiny_config()
    cls = load_release_class(_fake_release(tmp_path / "a", asdict(config)))
    result = compare_with_release(cls, (1, 3, 16, 16), runs=2, threads=1, config=config,
                                  progress=False)
    assert result.max_diff < 1e-6
    assert len(result.release_s) == len(result.ours_s) == 2
    assert result.ratio > 0 and result.pair_ratio > 0 and result.cpu_ratio > 0
    assert "1x3x16x16" in result.summary()


def test_compare_sees_a_different_release_output(tmp_path):
    config = tiny_config()
    cls = load_release_class(_fake_release(tmp_path / "b", asdict(config), scale=1.5))
    result = compare_with_release(cls, (1, 3, 16, 16), runs=1, threads=1, config=config,
                                  progress=False)
    assert result.max_diff > 1e-3


def test_missing_release_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["--release-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "net/model.py" in err and "Traceback" not in err
    assert not (tmp_path / "nowhere").exists()


def test_a_model_file_without_the_release_class_is_refused(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "model.py").write_text("X = 1\n")
    with pytest.raises(ConfigError, match="ChannelShuffle_skip_textguaid"):
        load_release_class(tmp_path)


def test_invalid_runs_is_refused_before_loading(tmp_path, capsys):
    assert main(["--release-dir", str(tmp_path), "--runs", "0"]) == 2
    assert "--runs must be >= 1" in capsys.readouterr().err


def test_cli_full_size_on_a_small_input(tmp_path, capsys):
    root = _fake_release(tmp_path / "c")
    assert main(["--release-dir", str(root), "--size", "8", "8", "--batch", "1", "--runs", "1",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "1x3x8x8" in out and "largest output difference" in out
