"""Dose-response of a trained demo model: how much each planted degradation alone hurts
recognition (not a test module: run it by hand; docs/demo.md gives the measured table).

For each identity of the demo, one clean reference image and two probe images are rendered from
fresh random streams (never in the dataset: stream 7 of ``default_rng([seed, label, 7, k])``).
Each condition degrades the probes with one degradation at one level (blur, down-up sampling,
occlusion, noise, JPEG) and compares them with the clean references of all identities. The
threshold is fixed at FMR 1e-3 of the clean probes' impostor scores; per condition the script
prints the FNMR of the genuine comparisons, the share of matches retained relative to clean
probes, (1 - FNMR) / (1 - FNMR_clean), and the condition's ``true_quality``. The retained shares
are what ``true_quality``'s factors are meant to follow (docs/demo.md).

Run: ``python tests/scripts/demo_dose_response.py results/models/demo/checkpoint.ckpt``
(``--seed`` the demo's seed, ``--identities`` how many identities to use).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pandas as pd
import torch

from featnorm.data import demo
from featnorm.embedding import models

CLEAN = {
    "blur_sigma": 0.0,
    "downup_factor": 1.0,
    "occlusion": "none",
    "noise_sigma": 0.0,
    "jpeg_quality": 100,
}
STREAM = 7  # rng stream of the rendered images; the dataset uses 0 (traits) and 1 (images)
FMR = 1e-3


def conditions() -> list[tuple[str, dict]]:
    """Each degradation alone, over its range (down-up factors on whole-pixel sides)."""
    out = [("clean", CLEAN)]
    out += [(f"blur {b}", {**CLEAN, "blur_sigma": float(b)}) for b in (1, 2, 3, 4, 5)]
    out += [
        (f"down-up {f}", {**CLEAN, "downup_factor": 112 / round(112 / f)})
        for f in (2, 4, 6, 8, 10, 12, 16)
    ]
    out += [(f"occlusion {o}", {**CLEAN, "occlusion": o}) for o in demo.OCCLUSIONS[1:]]
    out += [(f"noise {n}", {**CLEAN, "noise_sigma": float(n)}) for n in (10, 25)]
    out += [(f"jpeg {q}", {**CLEAN, "jpeg_quality": q}) for q in (50, 25, 10)]
    return out


def render(traits: dict, seed: int, label: int, k: int, d: dict) -> np.ndarray:
    rng = np.random.default_rng([seed, label, STREAM, k])
    image = demo.degrade(demo.render_identity_image(traits, rng, d["occlusion"]), rng, d)
    if d["jpeg_quality"] < 100:
        _, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, d["jpeg_quality"]])
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return image


def embed(model: torch.nn.Module, images: list[np.ndarray]) -> np.ndarray:
    x = models.preprocess(images)
    with torch.inference_mode():
        return torch.cat([model(x[s : s + 256])[0] for s in range(0, len(x), 256)]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--identities", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = models.load(args.checkpoint, "adaface", "ir_demo")
    labels = np.arange(args.identities)
    traits = [demo.identity_traits(args.seed, int(label)) for label in labels]
    reference = embed(model, [render(t, args.seed, i, 0, CLEAN) for i, t in enumerate(traits)])
    probe_labels = np.repeat(labels, 2)
    threshold, rows = None, []
    for name, d in conditions():
        probes = [render(traits[i], args.seed, int(i), k, d) for i in labels for k in (1, 2)]
        scores = embed(model, probes) @ reference.T
        genuine = scores[np.arange(len(probe_labels)), probe_labels]
        if threshold is None:  # the clean condition comes first and fixes the threshold
            impostor = scores[probe_labels[:, None] != labels[None, :]]
            threshold = np.quantile(impostor, 1 - FMR)
        quality = demo.true_quality(*(d[c] for c in demo.DEGRADATION_COLUMNS))
        rows.append({"condition": name, "fnmr": float((genuine < threshold).mean()), "q": quality})
    table = pd.DataFrame(rows)
    table["retained"] = (1 - table["fnmr"]) / (1 - table.loc[0, "fnmr"])
    table.insert(
        1,
        "sigma_eq",
        [demo.equivalent_blur(d["blur_sigma"], d["downup_factor"]) for _, d in conditions()],
    )
    print(f"threshold {threshold:.4f} (FMR {FMR:g} of clean impostors), {len(labels)} identities")
    print(table.rename(columns={"q": "true_quality"}).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
