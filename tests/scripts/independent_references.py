"""Independent recomputation of the face-quality references in samples.parquet from the stored
embeddings and the checkpoint (not a test module: run it by hand after a workflow run).

It shares no code with featnorm: it reads the Parquet files with pyarrow and the checkpoint with
torch.load, and recomputes each reference by plain Python loops over images:

* centre_similarity: the cosine to the mean of the other ok images of the class (float64);
* certainty_ratio: CCS / (NNCCS + 1 + 1e-9) with a loop over the head's classes;
* sdd_quality: an *independent resampling* (Python's ``random``, its own seed): per image and
  resampling, m genuine similarities drawn without replacement (all of them for a class with
  m or fewer others) and m impostors drawn uniformly without replacement from the other
  classes' ok images, scipy.stats.wasserstein_distance, averaged over k resamplings.

Acceptance (issue 20): centre_similarity within 5e-3, certainty_ratio Spearman > 0.99,
sdd_quality Spearman > 0.85 (different random draws agree in rank, not in value).

Run: ``python tests/scripts/independent_references.py results demo`` (the results folder and
the model; the checkpoint defaults to results/models/<model>/checkpoint.ckpt, else pass
``--checkpoint``). Prints the agreement and exits non-zero when a criterion fails.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from scipy.stats import spearmanr, wasserstein_distance

CENTRE_ABS = 5e-3
CERTAINTY_SPEARMAN = 0.99
SDD_SPEARMAN = 0.85


def read_embeddings(folder: Path, model: str) -> dict[int, np.ndarray]:
    """sample_id -> float64 unit embedding, for every ok row of the model's shards."""
    out = {}
    for path in sorted((folder / "embed" / model).glob("shard-*.parquet")):
        table = pq.read_table(path, columns=["sample_id", "status", "embedding"]).to_pylist()
        for row in table:
            if row["status"] == "ok":
                e = np.asarray(row["embedding"], dtype=np.float64)
                out[row["sample_id"]] = e / np.linalg.norm(e)
    return out


def centre(ids: list[int], emb: dict, label: dict) -> dict[int, float]:
    out = {}
    for i in ids:
        others = [emb[j] for j in ids if label[j] == label[i] and j != i]
        if not others:
            out[i] = float("nan")
            continue
        mean = np.sum(others, axis=0) / len(others)
        out[i] = float(emb[i] @ mean / np.linalg.norm(mean))
    return out


def certainty(ids: list[int], emb: dict, label: dict, kernel: np.ndarray) -> dict[int, float]:
    centres = [kernel[:, c] / np.linalg.norm(kernel[:, c]) for c in range(kernel.shape[1])]
    out = {}
    for i in ids:
        cos = [min(1.0, max(-1.0, float(emb[i] @ c))) for c in centres]
        own = cos[label[i]]
        nearest = max(v for c, v in enumerate(cos) if c != label[i])
        out[i] = own / (nearest + 1 + 1e-9)
    return out


def sdd(ids: list[int], emb: dict, label: dict, m: int, k: int, seed: int) -> dict[int, float]:
    rnd = random.Random(seed)
    members: dict[int, list[int]] = {}
    for i in ids:
        members.setdefault(label[i], []).append(i)
    out = {}
    for i in ids:
        others = [j for j in members[label[i]] if j != i]
        if not others:
            out[i] = float("nan")
            continue
        distances = []
        for _ in range(k):
            genuine = others if len(others) <= m else rnd.sample(others, m)
            impostors = []
            while len(impostors) < m:  # uniform over all ok images, own class refused
                j = rnd.choice(ids)
                if label[j] != label[i] and j not in impostors:
                    impostors.append(j)
            distances.append(
                wasserstein_distance(
                    [float(emb[i] @ emb[j]) for j in genuine],
                    [float(emb[i] @ emb[j]) for j in impostors],
                )
            )
        out[i] = float(np.mean(distances))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    p.add_argument("model")
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--seed", type=int, default=12345, help="seed of the independent resampling")
    args = p.parse_args()
    samples_path = args.results / args.model / "samples.parquet"
    meta = json.loads(pq.read_schema(samples_path).metadata[b"featnorm"])["references_meta"]
    samples = pq.read_table(samples_path).to_pandas()
    emb = read_embeddings(args.results, args.model)
    label = dict(zip(samples["sample_id"], samples["label"], strict=True))
    ids = [i for i in samples["sample_id"] if i in emb]
    stored = samples.set_index("sample_id")
    print(f"{len(ids)} ok images of {len(samples)}; featnorm's settings {meta['sdd']}")
    failed = False

    got = centre(ids, emb, label)
    diff = np.array([abs(got[i] - stored.loc[i, "centre_similarity"]) for i in ids])
    both_nan = [np.isnan(got[i]) == np.isnan(stored.loc[i, "centre_similarity"]) for i in ids]
    worst = np.nanmax(diff)
    ok = worst <= CENTRE_ABS and all(both_nan)
    failed |= not ok
    print(f"centre_similarity: max |diff| {worst:.2e} (<= {CENTRE_ABS}), NaN alike {all(both_nan)}")

    def rank_check(name: str, values: dict, floor: float) -> bool:
        pairs = [(values[i], stored.loc[i, name]) for i in ids if np.isfinite(values[i])]
        rho = spearmanr(*zip(*pairs, strict=True)).statistic
        print(f"{name}: Spearman {rho:.4f} (> {floor}) over {len(pairs)} images")
        return rho > floor

    if "certainty_ratio" in stored.columns:
        ckpt = args.checkpoint or args.results / "models" / args.model / "checkpoint.ckpt"
        kernel = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        kernel = kernel["head.kernel"].double().numpy()
        failed |= not rank_check(
            "certainty_ratio", certainty(ids, emb, label, kernel), CERTAINTY_SPEARMAN
        )
    else:
        print(f"certainty_ratio: absent ({meta['certainty_ratio']['reason']})")
    m, k = meta["sdd"]["m"], meta["sdd"]["k"]
    failed |= not rank_check("sdd_quality", sdd(ids, emb, label, m, k, args.seed), SDD_SPEARMAN)
    print("FAILED" if failed else "all references agree")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
