"""featnorm.data.images: one decoding policy, failures as statuses."""

import cv2
import numpy as np
import pytest

from featnorm.data.images import decode_bytes, to_uint8
from featnorm.data.sources import read_image


def _encode(ext, image):
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def test_colour_png_round_trips_as_bgr():
    image = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    decoded = decode_bytes(_encode(".png", image))
    assert decoded.ok and np.array_equal(decoded.image, image)


def test_grey_stays_two_dimensional_and_alpha_is_dropped():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert decode_bytes(_encode(".png", grey)).image.shape == (8, 8)
    bgra = np.dstack([np.full((8, 8, 3), 50, np.uint8), np.zeros((8, 8), np.uint8)])
    out = decode_bytes(_encode(".png", bgra)).image
    assert out.shape == (8, 8, 3) and (out == 50).all()


def test_sixteen_bit_is_scaled_to_eight():
    image16 = np.array([[0, 257, 65535]], dtype=np.uint16)
    assert decode_bytes(_encode(".png", image16)).image.tolist() == [[0, 1, 255]]


def test_float_images_are_clipped_and_scaled():
    assert to_uint8(np.array([[-0.5, 0.5, 2.0]], np.float32)).tolist() == [[0, 128, 255]]


@pytest.mark.parametrize(
    ("data", "status"), [(b"", "empty_file"), (b"definitely not an image", "undecodable")]
)
def test_bad_bytes_become_statuses(data, status):
    decoded = decode_bytes(data)
    assert decoded.image is None and decoded.status == status


def test_missing_file_and_non_ascii_names(tmp_path):
    assert read_image(tmp_path / "missing.png").status == "missing_file"
    path = tmp_path / "Zoë_Ñandú.png"
    path.write_bytes(_encode(".png", np.zeros((4, 4, 3), np.uint8)))
    assert read_image(path).ok


def _jpeg_with_declared_size(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose start-of-frame header is rewritten to claim width x height."""
    data = bytearray(_encode(".jpg", np.zeros((16, 16, 3), np.uint8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_headers_declaring_huge_images_are_refused_without_decoding():
    """A JPEG claiming 65000x65000 px (4.2 GP) is too_large; a PNG IHDR likewise."""
    assert decode_bytes(_jpeg_with_declared_size(65000, 65000)).status == "too_large"
    png = bytearray(_encode(".png", np.zeros((4, 4), np.uint8)))
    png[16:24] = (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big")
    assert decode_bytes(bytes(png)).status == "too_large"


def test_declared_size_reads_the_real_jpeg_and_png_headers():
    from featnorm.data.images import _declared_pixels

    jpeg = np.frombuffer(_encode(".jpg", np.zeros((30, 20, 3), np.uint8)), np.uint8)
    png = np.frombuffer(_encode(".png", np.zeros((30, 20), np.uint8)), np.uint8)
    assert _declared_pixels(jpeg) == 600 and _declared_pixels(png) == 600
