"""Issue 22, class 5: images read as a viewer shows them; a folder is not "missing"."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from dfpir.data import read_image_raw
from dfpir.data.errors import ImageReadError


def test_exif_orientation_6_is_honoured(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = 255  # left half white as stored; orientation 6 = rotate 90 deg clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "portrait.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=100)
    shown = read_image_raw(path)
    assert shown.shape == (40, 20, 3)
    assert shown[:15].mean() > 200 and shown[25:].mean() < 50  # white on top after the turn


def test_a_folder_or_fifo_is_not_called_missing(tmp_path):
    with pytest.raises(ImageReadError, match="a folder"):
        read_image_raw(tmp_path)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image_raw(fifo)
