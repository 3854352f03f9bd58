"""The SVR that maps BRISQUE features to a score: libsvm model files and the shipped LIVE model."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from featnorm.quality.brisque.mscn import N_FEATURES


@dataclass(frozen=True)
class SvrModel:
    """An epsilon-SVR with an RBF kernel plus the feature scaling it was trained with.

    sv : (n_sv, 36) float64, support vectors in scaled feature space.
    coef : (n_sv,) float64, dual coefficients.
    rho : float, ``score = coef @ K - rho``.
    gamma : float, RBF ``exp(-gamma * ||x - sv||^2)``.
    feature_min, feature_max : (36,) float64, the svm-scale range mapped onto [-1, 1].
    """

    sv: np.ndarray
    coef: np.ndarray
    rho: float
    gamma: float
    feature_min: np.ndarray
    feature_max: np.ndarray

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """SVR output for (N, 36) raw features -> (N,) float64; NaN rows stay NaN.

        The features are scaled to [-1, 1] with ``feature_min``/``feature_max`` first; for the LIVE
        model the output is the BRISQUE score (lower is better).
        """
        x = -1.0 + 2.0 * (feats - self.feature_min) / (self.feature_max - self.feature_min)
        sq = (
            np.einsum("ij,ij->i", x, x)[:, None]
            + np.einsum("ij,ij->i", self.sv, self.sv)[None, :]
            - 2.0 * (x @ self.sv.T)
        )
        kernel = np.exp(-self.gamma * np.maximum(sq, 0.0))
        return kernel @ self.coef - self.rho


def load_libsvm_model(model_path: str | os.PathLike, range_path: str | os.PathLike) -> SvrModel:
    """Read a libsvm epsilon-SVR RBF model file and its svm-scale range file (LIVE format).

    Raises ValueError when the files are not an RBF epsilon-SVR over 36 features scaled to [-1, 1].
    """
    header: dict[str, str] = {}
    rows: list[tuple[float, dict[int, float]]] = []
    lines = Path(model_path).read_text().splitlines()
    for k, line in enumerate(lines):
        if line.strip() == "SV":
            for sv_line in lines[k + 1 :]:
                if not sv_line.strip():
                    continue
                first, *pairs = sv_line.split()
                rows.append(
                    (float(first), {int(i): float(v) for i, v in (p.split(":") for p in pairs)})
                )
            break
        key, _, value = line.partition(" ")
        header[key] = value.strip()
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ValueError(
            f"{model_path}: svm_type={header.get('svm_type')!r}, kernel_type="
            f"{header.get('kernel_type')!r}; expected an epsilon_svr with an rbf kernel"
        )
    sv = np.zeros((len(rows), N_FEATURES))
    for r, (_, values) in enumerate(rows):
        for i, v in values.items():
            sv[r, i - 1] = v
    coef = np.array([c for c, _ in rows])

    range_lines = Path(range_path).read_text().split("\n")
    lower, upper = (float(v) for v in range_lines[1].split())
    if range_lines[0].strip() != "x" or (lower, upper) != (-1.0, 1.0):
        raise ValueError(f"{range_path}: expected an 'x' range file scaling to '-1 1'")
    table = np.array([[float(v) for v in ln.split()] for ln in range_lines[2:] if ln.strip()])
    if table.shape != (N_FEATURES, 3):
        raise ValueError(f"{range_path}: {table.shape[0]} feature ranges; expected {N_FEATURES}")
    order = np.argsort(table[:, 0])
    return SvrModel(
        sv=sv,
        coef=coef,
        rho=float(header["rho"]),
        gamma=float(header["gamma"]),
        feature_min=table[order, 1],
        feature_max=table[order, 2],
    )


@cache
def live_model() -> SvrModel:
    """The LIVE BRISQUE model shipped with featnorm (``brisque_live.npz`` beside this module), read once."""
    with resources.files(__package__).joinpath("brisque_live.npz").open("rb") as fh:
        z = np.load(fh)
        return SvrModel(
            sv=z["sv"],
            coef=z["coef"],
            rho=float(z["rho"]),
            gamma=float(z["gamma"]),
            feature_min=z["feature_min"],
            feature_max=z["feature_max"],
        )
