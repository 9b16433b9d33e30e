"""The restore web page: menu choices, restoring uploads (bad files get a message), and a real
headless Chromium that uploads an image, restores it and sees an output of the right size."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import always_classifier, tiny_config

from dfpir.app.server import (
    AUTO,
    NO_PROMPT,
    blind_classifier,
    degradation_choices,
    load_bundle,
    restore_image,
    restore_uploads,
)
from dfpir.cli.app import main as app_main
from dfpir.config import ExperimentConfig
from dfpir.data import read_image_raw, write_image
from dfpir.models import DFPIR

pytestmark = pytest.mark.usefixtures("one_thread")


def save_tiny(path: Path, **overrides) -> Path:
    cfg = ExperimentConfig(model=tiny_config(**overrides))
    cfg.prompts.encoder = "hashed"
    stored = dataclasses.asdict(cfg)
    stored["data"]["train_tasks"] = []
    stored["data"]["builtin"].update(enabled=True, tasks=["derain", "dehaze"])
    torch.save({"model": DFPIR(cfg.model).state_dict(), "config": stored}, path)
    return path


def photo(height: int, width: int, channels: int = 3, dtype=np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    return np.random.default_rng(0).integers(0, top, (height, width, channels), dtype=dtype)


def test_choices_and_auto_extension_point(tmp_path):
    bundle = load_bundle(save_tiny(tmp_path / "tiny.pt"), device="cpu")
    assert degradation_choices(bundle) == ["derain", "dehaze"]  # what it was trained on
    classifier, why = blind_classifier(bundle)
    assert classifier is None and "no blind degradation classifier" in why
    base = load_bundle(save_tiny(tmp_path / "base.pt", dgcpm=False, caapm=False), device="cpu")
    assert degradation_choices(base) == [NO_PROMPT]
    assert AUTO not in degradation_choices(base)


def test_auto_is_offered_with_a_stored_classifier(tmp_path):
    from dfpir.blind import train_classifier
    from dfpir.config import load_config

    cfg = load_config(Path(__file__).parents[1] / "configs" / "demo.yaml",
                      ["data.builtin.tasks=[derain, dehaze]", "classifier.samples_per_task=16",
                       "classifier.steps=30", "classifier.max_crops=2",
                       "classifier.clean_class=false", "classifier.if_unsure=restore"])
    ckpt = save_tiny(tmp_path / "tiny.pt")
    raw = torch.load(ckpt)
    raw["classifier"] = train_classifier(cfg).to_state()
    torch.save(raw, ckpt)
    bundle = load_bundle(ckpt, device="cpu")
    assert degradation_choices(bundle) == [AUTO, "derain", "dehaze"]
    result = restore_image(bundle, photo(40, 48), AUTO)
    assert result.degradation in ("derain", "dehaze") and result.output.shape == (40, 48, 3)
    assert any(note.startswith("auto: ") for note in result.notes)


def test_auto_leaves_a_clean_looking_upload_as_it_is(tmp_path):
    """Issue 22: an upload the classifier finds clean is not restored, nothing is written for
    it, and its message says so; an unsure one is left as it is too (the default)."""
    ckpt = save_tiny(tmp_path / "tiny.pt")
    raw = torch.load(ckpt)
    raw["classifier"] = always_classifier("clean", ["derain", "dehaze", "clean"]).to_state()
    torch.save(raw, ckpt)
    bundle = load_bundle(ckpt, device="cpu")
    write_image(tmp_path / "in" / "a.png", photo(40, 48))
    results, written, messages = restore_uploads(bundle, [tmp_path / "in" / "a.png"], AUTO,
                                                 tmp_path / "out")
    assert results == [] and written == [] and not any((tmp_path / "out").glob("*"))
    assert messages == [messages[0]] and "a.png**: auto: looks clean: left as it is" in messages[0]
    with torch.no_grad():  # now every class has p = 1/3, below the threshold (0.6)
        bundle.classifier.net[-1].bias.zero_()
    _, written, messages = restore_uploads(bundle, [tmp_path / "in" / "a.png"], AUTO,
                                           tmp_path / "out")
    assert written == [] and "unsure" in messages[0] and "not restored" in messages[0]


def test_restore_uploads_keeps_formats_and_reports_bad_files(tmp_path):
    bundle = load_bundle(save_tiny(tmp_path / "tiny.pt"), device="cpu", tile=32, overlap=8)
    write_image(tmp_path / "in" / "big16.png", photo(45, 70, 4, np.uint16))
    write_image(tmp_path / "in" / "grey.png", photo(20, 30, 1)[:, :, 0])
    (tmp_path / "in" / "empty.png").write_bytes(b"")
    (tmp_path / "in" / "text.png").write_text("not an image")
    full = (tmp_path / "in" / "trunc.png")
    write_image(full, photo(40, 40))
    full.write_bytes(full.read_bytes()[:200])
    steps = []
    names = ["big16.png", "empty.png", "grey.png", "text.png", "trunc.png"]
    results, written, messages = restore_uploads(
        bundle, [tmp_path / "in" / n for n in names], "derain", tmp_path / "out",
        lambda done, total: steps.append((done, total)))
    assert [p.name for p in written] == ["big16_restored.png", "grey_restored.png"]
    big = read_image_raw(written[0])
    assert big.shape == (45, 70, 4) and big.dtype == np.uint16
    assert read_image_raw(written[1]).shape == (20, 30)
    assert results[0].after.shape == (45, 70, 3) and results[0].after.dtype == np.uint8
    assert len(messages) == 5
    for name in ("empty.png", "text.png", "trunc.png"):
        assert any(m.startswith(f"**{name}**: not restored") for m in messages), messages
    assert (6, 30) in steps  # big16: 2 x 3 tiles of 32 px, counted within 5 files x 6 tiles
    assert read_image_raw(written[0])[:, :, 3].tolist() == photo(45, 70, 4, np.uint16)[:, :, 3].tolist()


def test_app_without_a_model_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gradio")
    monkeypatch.chdir(tmp_path)
    assert app_main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no model") and "configs/demo.yaml" in err
    assert app_main(["--ckpt", str(tmp_path / "none.pt")]) == 2
    assert "none.pt" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_page_in_headless_chromium(tmp_path):
    """Chromium loads the page, uploads an image and a broken file, restores, and finds an
    output image of the input's size; the screenshot goes to tmp_path (and to
    $DFPIR_APP_SCREENSHOT when set, which is how docs/figures/app.png is made)."""
    pytest.importorskip("gradio")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver)")
    from dfpir.app.server import build_app, close_app

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    photo_path = tmp_path / "photo.png"
    image = os.environ.get("DFPIR_APP_IMAGE")
    if image:  # a real photo for the README screenshot
        write_image(photo_path, read_image_raw(image))
    else:
        write_image(photo_path, photo(45, 61))
    (tmp_path / "broken.png").write_text("not an image")
    expected = read_image_raw(photo_path).shape[:2]
    ckpt = Path(os.environ.get("DFPIR_APP_CKPT") or save_tiny(tmp_path / "tiny.pt"))
    bundle = load_bundle(ckpt, device="cpu", tile=int(os.environ.get("DFPIR_APP_TILE", 32)),
                         overlap=8)
    app = build_app(bundle)
    port = _free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                       allowed_paths=[str(app.out_root)], quiet=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1500"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=chromedriver))
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 120)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR,
                                                     "#uploads input[type=file]"))
        upload.send_keys(f"{photo_path}\n{tmp_path / 'broken.png'}")
        wait.until(lambda d: "broken" in d.find_element(By.ID, "uploads").text)
        choice = driver.find_element(By.ID, "degradation").text
        driver.find_element(By.ID, "restore").click()
        wait.until(lambda d: "restored (" in d.find_element(By.ID, "status").text)
        size = wait.until(lambda d: d.execute_script(
            "const i = document.querySelector('#after img');"
            "return i && i.complete && i.naturalWidth ? [i.naturalHeight, i.naturalWidth] : null;"))
        status = driver.find_element(By.ID, "status").text
        assert tuple(size) == expected
        assert "broken.png: not restored" in status
        assert "Tile size" in driver.find_element(By.ID, "header").text
        if "DFPIR_APP_CKPT" not in os.environ:  # the tiny model has no classifier
            assert "'auto' is not offered" in driver.find_element(By.ID, "header").text
        assert "Degradation" in choice
        assert "photo_restored" in driver.find_element(By.ID, "downloads").text
        time.sleep(0.5)
        driver.save_screenshot(str(tmp_path / "app.png"))
        target = os.environ.get("DFPIR_APP_SCREENSHOT")
        if target:
            driver.save_screenshot(target)
        assert (tmp_path / "app.png").stat().st_size > 0
    except Exception:
        driver.save_screenshot(str(tmp_path / "failure.png"))
        raise
    finally:
        driver.quit()
        app.close()
        close_app(app)  # as dfpir app does when it stops


def test_sigterm_stops_the_app_and_removes_its_folder(tmp_path):
    """kill (SIGTERM) ends `dfpir app` as Ctrl-C does: exit 143 and its folder of restored
    uploads (dfpir_app_*) gone."""
    import signal
    import subprocess
    import sys

    pytest.importorskip("gradio")
    ckpt = save_tiny(tmp_path / "tiny.pt")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    proc = subprocess.Popen([sys.executable, "-m", "dfpir", "app", "--ckpt", str(ckpt),
                             "--port", str(_free_port()), "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # "serving ...": the folder exists from here on
        assert line.startswith("serving"), line + proc.stderr.read()
        deadline = time.time() + 60
        while not list(temp.glob("dfpir_app_*")) and time.time() < deadline:
            time.sleep(0.2)
        assert list(temp.glob("dfpir_app_*"))
        time.sleep(2)  # into gradio's serving loop
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        proc.kill()
    assert not list(temp.glob("dfpir_app_*"))


def test_a_choice_outside_the_menu_is_answered_on_the_page(tmp_path):
    """An API call may send any degradation: the page answers it, gradio prints nothing."""
    pytest.importorskip("gradio")
    from dfpir.app.server import build_app, close_app, load_bundle

    bundle = load_bundle(save_tiny(tmp_path / "tiny.pt"), device="cpu")
    write_image(tmp_path / "x.png", photo(16, 16))
    app = build_app(bundle)
    try:
        run = next(f.fn for f in app.fns.values() if getattr(f, "name", "") == "run")
        *_, message = run([str(tmp_path / "x.png")], "snow")
        assert "'snow' is not offered by this model" in message
    finally:
        close_app(app)
