"""The embedded demo dataset: synthetic identities with a long-tailed class-size law.

Each identity is a parametric face drawn with OpenCV (head shape, skin and hair tone, hairstyle,
eyes, irises, brows, nose, mouth, optional glasses and beard), roughly aligned to the 5-point
112x112 template that AdaFace crops use (eyes near y = 52). Each image of an identity adds
nuisance (in-plane rotation, yaw-like shift of the inner features, scale, translation,
illumination gain and gradient, background) and then a degradation drawn independently of the
identity and of the class size:

* ``blur_sigma``  Gaussian blur sigma in pixels (0 = none);
* ``downup_factor``  downscale by this factor then upscale back with bilinear interpolation (1 = none);
* ``noise_sigma``  additive Gaussian noise sigma on the 0..255 scale (0 = none);
* ``jpeg_quality``  JPEG quality of the saved file (100 = lossless PNG or no recompression).

``true_quality`` combines them into one ground-truth score in (0, 1], higher = better, 1 =
undegraded. It is the geometric mean of four retention factors, each 1 when the degradation is
absent and falling to 1/2 at a moderate strength:

    q_blur  = 1 / (1 + (blur_sigma / 1.5)^2)        (1/2 at sigma 1.5 px)
    q_down  = 1 / downup_factor                       (fraction of linear resolution kept)
    q_noise = 1 / (1 + (noise_sigma / 10)^2)         (1/2 at sigma 10)
    q_jpeg  = 1 / (1 + ((100 - jpeg_quality) / 60)^2) (1/2 at quality 40)

Class sizes follow a truncated power law (Zipf-like), n(rank) = round(max_images * rank^-a),
clipped below at ``min_images``, like the long tail of CASIA-WebFace.
Everything is drawn from ``numpy.random.default_rng`` streams seeded per identity and per image,
so the same seed gives byte-identical files regardless of generation order.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from featnorm.config.demo_params import DemoParams, class_sizes, image_count
from featnorm.tableio import atomic_path

__all__ = [
    "SPLITS",
    "DemoParams",
    "class_sizes",
    "generate",
    "image_count",
    "render_identity_image",
    "true_quality",
]

logger = logging.getLogger(__name__)

IMAGE_SIZE_PX = 112
_SUPERSAMPLE = 2  # draw at 2x and area-downsample: anti-aliased edges without blurring the face
_CANVAS_PX = IMAGE_SIZE_PX * _SUPERSAMPLE
_SAVE_JPEG_QUALITY = 95  # quality of undegraded JPEG files (the "no JPEG degradation" level)

SPLITS = ("train", "holdout")  # values of the manifest's `split` column

# probability that an image escapes each degradation; keeps a healthy share of clean images
_P_CLEAN = {"blur": 0.5, "downup": 0.6, "noise": 0.5, "jpeg": 0.5}


def true_quality(blur_sigma, downup_factor, noise_sigma, jpeg_quality) -> np.ndarray:
    """Ground-truth quality in (0, 1], higher = better (module docstring gives the formula).

    Arguments are scalars or arrays: blur sigma (px, >= 0), down-up factor (>= 1), noise sigma
    (0..255 grey levels, >= 0) and JPEG quality (1..100); 1.0 means undegraded.
    """
    q_blur = 1.0 / (1.0 + (np.asarray(blur_sigma, float) / 1.5) ** 2)
    q_down = 1.0 / np.asarray(downup_factor, float)
    q_noise = 1.0 / (1.0 + (np.asarray(noise_sigma, float) / 10.0) ** 2)
    q_jpeg = 1.0 / (1.0 + ((100.0 - np.asarray(jpeg_quality, float)) / 60.0) ** 2)
    return (q_blur * q_down * q_noise * q_jpeg) ** 0.25


_SKIN_DARK_BGR = np.array([45.0, 65.0, 100.0])
_SKIN_LIGHT_BGR = np.array([175.0, 200.0, 238.0])
_HAIR_DARK_BGR = np.array([15.0, 18.0, 22.0])
_HAIR_LIGHT_BGR = np.array([110.0, 175.0, 215.0])


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def _identity_traits(rng: np.random.Generator) -> dict:
    """The fixed appearance of one identity."""
    # skin and hair tones along natural BGR ramps (dark to light), with a little jitter
    skin = _lerp(_SKIN_DARK_BGR, _SKIN_LIGHT_BGR, rng.uniform()) + rng.normal(0, 6, 3)
    hair = _lerp(_HAIR_DARK_BGR, _HAIR_LIGHT_BGR, rng.uniform() ** 2) + rng.normal(0, 8, 3)
    return {
        "skin": skin,
        "hair": np.clip(hair, 0, 255),
        "face_w": rng.uniform(34, 44),
        "face_h": rng.uniform(46, 58),
        "jaw": rng.uniform(0.75, 1.0),  # chin narrowing
        "hair_style": int(rng.integers(0, 4)),  # 0 short, 1 fringe, 2 long, 3 bald
        "hair_volume": rng.uniform(2, 12),
        "eye_dx": rng.uniform(15, 21),
        "eye_y": rng.uniform(-3, 3),
        "eye_w": rng.uniform(4.5, 8.0),
        "eye_h": rng.uniform(2.0, 4.0),
        "iris": np.array([rng.uniform(20, 160), rng.uniform(30, 140), rng.uniform(10, 120)]),
        "brow_dy": rng.uniform(6, 11),
        "brow_tilt": rng.uniform(-3, 3),
        "brow_thick": rng.uniform(1.0, 3.5),
        "nose_len": rng.uniform(12, 22),
        "nose_w": rng.uniform(4, 9),
        "mouth_y": rng.uniform(36, 44),
        "mouth_w": rng.uniform(10, 17),
        "mouth_curve": rng.uniform(-4, 5),
        "lip": np.array([rng.uniform(60, 140), rng.uniform(60, 120), rng.uniform(120, 200)]),
        "glasses": bool(rng.random() < 0.2),
        "beard": bool(rng.random() < 0.2),
    }


_CX, _CY = 56.0, 62.0  # centre of the face on the 112-px template
_SHIFT = 4  # fractional bits of the fixed-point coordinates given to cv2 (see _pt)


def _pt(x: float, y: float) -> tuple[int, int]:
    """Canvas point in fixed-point coordinates (cv2 shift=4) from 112-scale coordinates."""
    scale = _SUPERSAMPLE * 16
    return int(round(x * scale)), int(round(y * scale))


def _len(v: float) -> int:
    return max(1, int(round(v * _SUPERSAMPLE * 16)))


def _col(c, g: float = 1.0) -> tuple[float, ...]:
    """A BGR colour for OpenCV: ``c`` scaled by ``g`` and clipped to [0, 255]."""
    return tuple(float(v) for v in np.clip(c * g, 0, 255))


def _draw_face(canvas: np.ndarray, t: dict, yaw: float) -> None:
    """Draw identity ``t`` on ``canvas`` (2x supersampled), centred on the template."""
    fx = _CX + yaw * 0.6  # inner features shift with yaw; the outline moves less
    _draw_head(canvas, t, yaw, fx)
    _draw_hair_on_top(canvas, t, yaw, fx)
    eye_y = 52.0 + t["eye_y"]
    _draw_eyes(canvas, t, yaw, fx, eye_y)
    _draw_nose_and_mouth(canvas, t, fx, eye_y)


def _draw_head(canvas: np.ndarray, t: dict, yaw: float, fx: float) -> None:
    """Hair behind the head (style 2), neck, head, jaw and beard."""
    aa, sh, col = cv2.LINE_AA, _SHIFT, _col
    cx, cy = _CX, _CY
    # hair behind the head
    if t["hair_style"] == 2:
        cv2.ellipse(
            canvas,
            _pt(cx, cy - 4),
            (_len(t["face_w"] + 8), _len(t["face_h"] + 8)),
            0,
            0,
            360,
            col(t["hair"]),
            -1,
            aa,
            sh,
        )
    # neck and head
    cv2.rectangle(
        canvas, _pt(cx - 12, cy + 30), _pt(cx + 12, 112), col(t["skin"], 0.85), -1, aa, sh
    )
    cv2.ellipse(
        canvas,
        _pt(cx + yaw * 0.2, cy),
        (_len(t["face_w"]), _len(t["face_h"])),
        0,
        0,
        360,
        col(t["skin"]),
        -1,
        aa,
        sh,
    )
    jaw_w = t["face_w"] * t["jaw"]
    cv2.ellipse(
        canvas,
        _pt(cx + yaw * 0.2, cy + 10),
        (_len(jaw_w), _len(t["face_h"] * 0.85)),
        0,
        0,
        180,
        col(t["skin"]),
        -1,
        aa,
        sh,
    )
    if t["beard"]:
        cv2.ellipse(
            canvas,
            _pt(fx, cy + 26),
            (_len(jaw_w * 0.8), _len(14)),
            0,
            0,
            180,
            col(t["hair"]),
            -1,
            aa,
            sh,
        )


def _draw_hair_on_top(canvas: np.ndarray, t: dict, yaw: float, fx: float) -> None:
    """The hair over the forehead (none for hair style 3, a fringe for style 1)."""
    aa, sh, col = cv2.LINE_AA, _SHIFT, _col
    cx, cy = _CX, _CY
    if t["hair_style"] != 3:
        top = cy - t["face_h"] + 4
        cv2.ellipse(
            canvas,
            _pt(cx + yaw * 0.2, top + 8),
            (_len(t["face_w"] + 2), _len(10 + t["hair_volume"])),
            0,
            180,
            360,
            col(t["hair"]),
            -1,
            aa,
            sh,
        )
        if t["hair_style"] == 1:
            cv2.ellipse(
                canvas,
                _pt(fx - 8, top + 12),
                (_len(18), _len(8)),
                -15,
                0,
                180,
                col(t["hair"]),
                -1,
                aa,
                sh,
            )


def _draw_eyes(canvas: np.ndarray, t: dict, yaw: float, fx: float, eye_y: float) -> None:
    """Eyes, irises, brows and glasses, both sides."""
    aa, sh, col = cv2.LINE_AA, _SHIFT, _col
    # eyes, irises, brows
    for side in (-1, 1):
        ex = fx + side * t["eye_dx"]
        cv2.ellipse(
            canvas,
            _pt(ex, eye_y),
            (_len(t["eye_w"]), _len(t["eye_h"])),
            0,
            0,
            360,
            (245, 245, 245),
            -1,
            aa,
            sh,
        )
        cv2.circle(
            canvas, _pt(ex + yaw * 0.1, eye_y), _len(t["eye_h"] * 0.9), col(t["iris"]), -1, aa, sh
        )
        cv2.circle(
            canvas, _pt(ex + yaw * 0.1, eye_y), _len(t["eye_h"] * 0.4), (15, 15, 15), -1, aa, sh
        )
        by = eye_y - t["brow_dy"]
        p0 = _pt(ex - t["eye_w"] - 1, by + side * t["brow_tilt"] * 0.5)
        p1 = _pt(ex + t["eye_w"] + 1, by - side * t["brow_tilt"] * 0.5)
        cv2.line(canvas, p0, p1, col(t["hair"], 0.8), _len(t["brow_thick"]) // 16, aa, sh)
        if t["glasses"]:
            cv2.ellipse(
                canvas,
                _pt(ex, eye_y),
                (_len(t["eye_w"] + 3.5), _len(t["eye_h"] + 3.5)),
                0,
                0,
                360,
                (30, 30, 30),
                _SUPERSAMPLE,
                aa,
                sh,
            )


def _draw_nose_and_mouth(canvas: np.ndarray, t: dict, fx: float, eye_y: float) -> None:
    """The nose (a filled triangle) and the mouth (a curved line)."""
    aa, sh, col = cv2.LINE_AA, _SHIFT, _col
    # nose and mouth
    nose_top, nose_bot = eye_y + 4, eye_y + t["nose_len"]
    pts = np.array(
        [_pt(fx, nose_top), _pt(fx - t["nose_w"], nose_bot), _pt(fx + t["nose_w"], nose_bot)],
        np.int32,
    )
    cv2.fillConvexPoly(canvas, pts, col(t["skin"], 0.78), aa, sh)
    my = eye_y + t["mouth_y"]
    mouth = np.array(
        [
            _pt(fx + x, my + t["mouth_curve"] * (1 - (x / t["mouth_w"]) ** 2))
            for x in np.linspace(-t["mouth_w"], t["mouth_w"], 9)
        ],
        np.int32,
    )
    cv2.polylines(canvas, [mouth], False, col(t["lip"]), 3 * _SUPERSAMPLE, aa, sh)


def render_identity_image(traits: dict, rng: np.random.Generator) -> np.ndarray:
    """One undegraded 112x112 BGR uint8 image of an identity with random nuisance."""
    bg = rng.uniform(30, 230, size=3)
    canvas = np.empty((_CANVAS_PX, _CANVAS_PX, 3), np.uint8)
    canvas[:] = np.clip(bg, 0, 255).astype(np.uint8)
    # a soft background texture: a few random blobs
    for _ in range(3):
        c = tuple(float(v) for v in np.clip(bg + rng.normal(0, 25, 3), 0, 255))
        cv2.circle(
            canvas,
            tuple(int(v) for v in rng.integers(0, _CANVAS_PX, 2)),
            int(rng.integers(20, 70)),
            c,
            -1,
            cv2.LINE_AA,
        )
    _draw_face(canvas, traits, yaw=rng.uniform(-4, 4))
    image = cv2.resize(canvas, (IMAGE_SIZE_PX, IMAGE_SIZE_PX), interpolation=cv2.INTER_AREA)
    # pose and scale: similarity warp about the template centre
    angle, scale = rng.uniform(-8, 8), rng.uniform(0.92, 1.08)
    m = cv2.getRotationMatrix2D((56.0, 60.0), angle, scale)
    m[:, 2] += rng.uniform(-3, 3, 2)
    image = cv2.warpAffine(
        image,
        m,
        (IMAGE_SIZE_PX, IMAGE_SIZE_PX),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT101,
    )
    # illumination: global gain and a linear gradient across the face
    gain = rng.uniform(0.7, 1.25)
    direction = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:IMAGE_SIZE_PX, 0:IMAGE_SIZE_PX].astype(np.float32) / IMAGE_SIZE_PX - 0.5
    ramp = 1.0 + rng.uniform(0.0, 0.35) * (np.cos(direction) * xx + np.sin(direction) * yy)
    lit = image.astype(np.float32) * (gain * ramp)[..., None]
    return np.clip(np.rint(lit), 0, 255).astype(np.uint8)


def _draw_degradation(rng: np.random.Generator) -> dict:
    clean = {k: rng.random() < p for k, p in _P_CLEAN.items()}
    return {
        "blur_sigma": 0.0 if clean["blur"] else float(rng.uniform(0.5, 3.0)),
        "downup_factor": 1.0 if clean["downup"] else float(rng.uniform(1.5, 4.0)),
        "noise_sigma": 0.0 if clean["noise"] else float(rng.uniform(2.0, 25.0)),
        "jpeg_quality": 100 if clean["jpeg"] else int(rng.integers(10, 91)),
    }


def degrade(image: np.ndarray, rng: np.random.Generator, d: dict) -> np.ndarray:
    """Apply blur, down-up sampling and noise of ``d`` (JPEG happens when the file is encoded).

    ``image``: 112x112 BGR uint8; ``d``: the degradation columns (units in the module docstring).
    Returns a new uint8 image of the same shape; ``rng`` draws the noise.
    """
    out = image
    if d["blur_sigma"] > 0:
        out = cv2.GaussianBlur(out, (0, 0), d["blur_sigma"], borderType=cv2.BORDER_REFLECT101)
    if d["downup_factor"] > 1:
        small = max(8, int(round(IMAGE_SIZE_PX / d["downup_factor"])))
        out = cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA)
        out = cv2.resize(out, (IMAGE_SIZE_PX, IMAGE_SIZE_PX), interpolation=cv2.INTER_LINEAR)
    if d["noise_sigma"] > 0:
        noisy = out.astype(np.float32) + rng.normal(0.0, d["noise_sigma"], out.shape).astype(
            np.float32
        )
        out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return out


def _encode(image: np.ndarray, jpeg_quality: int, image_format: str) -> tuple[bytes, str]:
    """Encode to the file format; a JPEG degradation always gives a JPEG file."""
    if jpeg_quality < 100 or image_format == "jpg":
        quality = jpeg_quality if jpeg_quality < 100 else _SAVE_JPEG_QUALITY
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        ext = "jpg"
    else:
        ok, buf = cv2.imencode(".png", image)
        ext = "png"
    if not ok:
        raise RuntimeError("OpenCV failed to encode a demo image")
    return buf.tobytes(), ext


def generate(params: DemoParams, image_dir: str | Path) -> pd.DataFrame:
    """Write the demo images under ``image_dir/<class_name>/`` and return their table.

    Returns one row per image with ``path`` (as ``image_dir`` was given, joined with the file
    name), ``label``, ``class_name``, the four degradation columns, ``true_quality`` and
    ``split``. Identity ``label`` gets ``class_sizes(params)[label]`` training images (``split``
    ``train``, files 0000..n-1) and then ``params.holdout`` held-out images (``holdout``, files
    n..n+holdout-1) drawn the same way; the demo model never trains on them. The held-out images
    are extra: the training images, and so the class sizes, are the same for any ``holdout``.
    """
    image_dir = Path(image_dir)
    sizes = class_sizes(params)
    rows = []
    for label, n_images in enumerate(sizes):
        class_name = f"id{label:05d}"
        traits = _identity_traits(np.random.default_rng([params.seed, label, 0]))
        (image_dir / class_name).mkdir(parents=True, exist_ok=True)
        for i in range(int(n_images) + params.holdout):
            rng = np.random.default_rng([params.seed, label, 1, i])
            d = _draw_degradation(rng)
            image = degrade(render_identity_image(traits, rng), rng, d)
            data, ext = _encode(image, d["jpeg_quality"], params.image_format)
            path = image_dir / class_name / f"{i:04d}.{ext}"
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
            rows.append(
                {
                    "path": str(path),
                    "label": label,
                    "class_name": class_name,
                    **d,
                    "split": SPLITS[0] if i < n_images else SPLITS[1],
                }
            )
        if label % 50 == 0:
            logger.info("demo: identity %d/%d (%d images so far)", label, len(sizes), len(rows))
    table = pd.DataFrame(rows)
    table["true_quality"] = true_quality(
        table["blur_sigma"], table["downup_factor"], table["noise_sigma"], table["jpeg_quality"]
    )
    split = table.pop("split")
    table["split"] = split.astype("string")
    return table
