"""Reading frames of every kind as one grey channel, and the exact original <-> model point map."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from iugc.data.images import ResizeMap, image_size, load_for_model, read_grey, resize_grey
from iugc.errors import UserError

GREY = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)  # non-square, every value distinct


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_grey_8bit_is_read_unchanged(tmp_path, suffix):
    path = tmp_path / f"frame{suffix}"
    Image.fromarray(GREY).save(path)
    image = read_grey(path)
    assert image.dtype == np.uint8 and image.shape == (12, 20)
    np.testing.assert_array_equal(image, GREY)


def test_rgb_and_rgba_reduce_to_luma(tmp_path):
    rgb = np.stack([GREY, GREY, GREY], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "grey_rgb.png")
    np.testing.assert_array_equal(read_grey(tmp_path / "grey_rgb.png"), GREY)

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 255  # opaque pure red
    Image.fromarray(rgba, "RGBA").save(tmp_path / "red.png")
    np.testing.assert_array_equal(read_grey(tmp_path / "red.png"), 76)  # ITU-R 601: 0.299 * 255


def test_palette_image(tmp_path):
    Image.fromarray(GREY).convert("P").save(tmp_path / "palette.png")
    assert Image.open(tmp_path / "palette.png").mode == "P"
    np.testing.assert_array_equal(read_grey(tmp_path / "palette.png"), GREY)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_keeps_the_high_byte(tmp_path, suffix):
    values = np.array([[0, 255, 256, 4095], [32768, 40000, 65280, 65535]], dtype=np.uint16)
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(values).save(path)
    np.testing.assert_array_equal(read_grey(path), [[0, 0, 1, 15], [128, 156, 255, 255]])


def test_jpeg_is_read_close_to_its_source(tmp_path):
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    Image.fromarray(np.stack([smooth] * 3, -1)).save(tmp_path / "frame.jpg", quality=95)
    image = read_grey(tmp_path / "frame.jpg")
    assert image.shape == (48, 64) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - smooth).mean() < 2


def test_image_size_reads_the_header(tmp_path):
    Image.fromarray(GREY).save(tmp_path / "frame.png")
    assert image_size(tmp_path / "frame.png") == (20, 12)


def test_truncated_file_names_itself(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(
        tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.png"):
        read_grey(tmp_path / "cut.png")


@pytest.mark.parametrize("reader", [read_grey, image_size])
def test_non_image_and_missing_files(tmp_path, reader):
    (tmp_path / "notes.png").write_text("not pixels")
    with pytest.raises(UserError, match=r"notes.png: not an image"):
        reader(tmp_path / "notes.png")
    with pytest.raises(UserError, match=r"absent.png: image file not found"):
        reader(tmp_path / "absent.png")


@pytest.mark.parametrize("width, height, size", [(512, 512, 128), (300, 200, 64), (100, 300, 128),
                                                 (97, 61, 40), (256, 256, 512)])
def test_resize_map_round_trip_is_exact(width, height, size):
    rng = np.random.default_rng(width)
    points = rng.uniform(-10, max(width, height) + 10, size=(5, 3, 2))
    mapping = ResizeMap(width, height, size)
    np.testing.assert_allclose(mapping.to_original(mapping.to_model(points)), points, atol=1e-9)
    np.testing.assert_allclose(mapping.to_model(mapping.to_original(points)), points, atol=1e-9)
    # The outer edges of the two grids coincide (pixel-centre convention).
    np.testing.assert_allclose(mapping.to_model([[-0.5, -0.5], [width - 0.5, height - 0.5]]),
                               [[-0.5, -0.5], [size - 0.5, size - 0.5]])


def test_resize_map_known_values():
    mapping = ResizeMap(width=512, height=256, size=128)
    np.testing.assert_allclose(mapping.to_model([[1.5, 1.5]]), [[0.0, 0.5]])
    np.testing.assert_allclose(mapping.to_original([[0.0, 0.5]]), [[1.5, 1.5]])


@pytest.mark.parametrize("width, height, size", [(300, 200, 64), (100, 300, 128), (300, 100, 128),
                                                 (61, 97, 80), (96, 96, 32)])
def test_resized_frame_puts_a_blob_where_the_map_says(width, height, size):
    """The resizer and ResizeMap agree: a blob's centroid lands on the mapped centre."""
    centre = np.array([0.37 * width + 0.3, 0.61 * height - 0.2])
    yy, xx = np.mgrid[0:height, 0:width]
    sigma = min(width, height) / 10
    blob = 255 * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma ** 2))
    resized = resize_grey(blob, size)
    assert resized.shape == (size, size) and resized.dtype == np.float32
    ys, xs = np.mgrid[0:size, 0:size]
    centroid = np.array([(resized * xs).sum(), (resized * ys).sum()]) / resized.sum()
    np.testing.assert_allclose(centroid, ResizeMap(width, height, size).to_model(centre), atol=0.01)


def test_load_for_model(tmp_path):
    Image.fromarray(np.stack([GREY] * 3, -1)).save(tmp_path / "frame.png")
    image, mapping = load_for_model(tmp_path / "frame.png", 16)
    assert image.shape == (16, 16) and image.dtype == np.float32
    assert GREY.min() <= image.min() and image.max() <= GREY.max()
    assert mapping == ResizeMap(width=20, height=12, size=16)
