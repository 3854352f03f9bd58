"""Checkpoint loading (featnorm.embedding.models.load / featnorm.embedding.models.checkpoint): formats, round trips,
clear errors and refusal of unsafe pickles."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
from support.recipe import golden_state_dict

from featnorm.embedding import models
from featnorm.embedding.models import CheckpointError


def _source(family: str, arch: str) -> torch.nn.Module:
    model = models.build(family, arch)
    model.load_state_dict(golden_state_dict(model))
    return model.eval()


def _norms(model: torch.nn.Module, family: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8) for _ in range(2)]
    with torch.inference_mode():
        return model(models.preprocess(images, family=family))[1][:, 0].numpy()


@pytest.fixture(scope="module")
def demo_model() -> torch.nn.Module:
    return _source("adaface", "ir_demo")


def _lightning(state: dict[str, torch.Tensor], classes: int = 5) -> dict:
    """The AdaFace Lightning layout, as featnorm's demo training also writes it."""
    return {
        "epoch": 3,
        "global_step": 120,
        "state_dict": {f"model.{k}": v for k, v in state.items()}
        | {
            "head.kernel": torch.randn(512, classes),
            "head.t": torch.zeros(1),
            "head.batch_mean": torch.full((1,), 20.0),
            "head.batch_std": torch.full((1,), 100.0),
        },
    }


class LegacyHyperParameters(dict):
    """Stands in for the custom classes old checkpoints pickle (AdaFace's ``dotdict``)."""


class WritesAFile:
    """A pickle payload: unpickling it calls ``Path.write_text`` (i.e. runs code)."""

    def __init__(self, target: pathlib.Path):
        self.target = target

    def __reduce__(self):
        return pathlib.Path.write_text, (self.target, "unpickling ran code")


# --- formats that load ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout", ["lightning_with_head", "plain", "plain_model_prefix", "mapping"]
)
def test_adaface_layouts_round_trip(demo_model, tmp_path, layout):
    state = demo_model.state_dict()
    obj = {
        "lightning_with_head": _lightning(state),
        "plain": state,
        "plain_model_prefix": {f"model.{k}": v for k, v in state.items()},
        "mapping": _lightning(state),
    }[layout]
    if layout == "mapping":
        loaded = models.load(obj, "adaface", "ir_demo")
    else:
        path = tmp_path / "model.ckpt"
        torch.save(obj, path)
        loaded = models.load(path, "adaface", "ir_demo")
    assert not loaded.training
    np.testing.assert_array_equal(_norms(loaded, "adaface"), _norms(demo_model, "adaface"))


@pytest.mark.parametrize("prefix", ["features.module.", "module.features."])
def test_magface_pth_with_either_prefix_round_trips(tmp_path, prefix):
    source = _source("magface", "iresnet18")
    state = {f"{prefix}{k}": v for k, v in source.state_dict().items()}
    # the margin loss's own weight (512 x classes) sits outside the prefix and must be ignored;
    # it would clash with the backbone's fc.weight (512 x 25088) if kept.
    state["fc.weight" if prefix == "features.module." else "module.fc.weight"] = torch.randn(512, 7)
    path = tmp_path / "magface.pth"
    torch.save({"epoch": 10, "arch": "iresnet18", "state_dict": state, "optimizer": {}}, path)
    loaded = models.load(path, "magface", "iresnet18")
    np.testing.assert_array_equal(_norms(loaded, "magface"), _norms(source, "magface"))


def test_gpu_saved_tensors_load_on_cpu(demo_model, tmp_path):
    """map_location='cpu' always: a file saved from CUDA tensors loads on a CPU-only machine."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device to write a checkpoint holding CUDA tensors")
    state = {k: v.cuda() for k, v in demo_model.state_dict().items()}
    path = tmp_path / "cuda.ckpt"
    torch.save(_lightning(state), path)
    loaded = models.load(path, "adaface", "ir_demo")
    assert next(loaded.parameters()).device.type == "cpu"


# --- clear errors ---------------------------------------------------------------------------


def test_wrong_architecture_names_the_likely_one_and_the_keys(demo_model, tmp_path):
    path = tmp_path / "demo.ckpt"
    torch.save(_lightning(demo_model.state_dict()), path)
    with pytest.raises(CheckpointError) as info:
        models.load(path, "adaface", "ir_18")
    message = str(info.value)
    assert "does not fit" in message and "family='adaface' arch='ir_18'" in message
    assert "most likely holds family='adaface' arch='ir_demo' (100% of keys" in message
    assert "missing keys (first: body.4.shortcut_layer.0.weight" in message
    assert "unexpected keys (first: body.1.shortcut_layer.0.weight" in message
    assert (
        "shape mismatches (first: input_layer.0.weight (16, 3, 3, 3) (model: (64, 3, 3, 3))"
        in message
    )


def test_magface_file_loaded_as_adaface_names_the_magface_arch(tmp_path):
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in models.build("magface", "iresnet18").state_dict().items()}
    state = {f"features.module.{k}": torch.zeros(s) for k, s in shapes.items()}
    likely = r"most likely holds family='magface' arch='iresnet18'"
    with pytest.raises(CheckpointError, match=likely):
        models.load(state, "adaface", "ir_18")


def test_truncated_file_is_a_clear_error(demo_model, tmp_path):
    path = tmp_path / "truncated.ckpt"
    torch.save(_lightning(demo_model.state_dict()), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError,
        match=r"truncated\.ckpt' \(\d+ bytes\) could not be read; "
        r"it is probably truncated",
    ):
        models.load(path, "adaface", "ir_demo")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.load(tmp_path / "nope.ckpt", "adaface", "ir_demo")


def test_pickle_payload_is_refused_and_does_not_run(demo_model, tmp_path):
    target = tmp_path / "written_by_unpickling.txt"
    path = tmp_path / "payload.ckpt"
    torch.save(_lightning(demo_model.state_dict()) | {"callbacks": WritesAFile(target)}, path)
    assert not target.exists()
    with pytest.raises(
        CheckpointError,
        match=r"safe loader \(weights_only=True\) refuses.*"
        r"trust_legacy_pickle=True",
    ):
        models.load(path, "adaface", "ir_demo")
    assert not target.exists()
    # the payload is real: a full unpickle does run it
    torch.load(path, map_location="cpu", weights_only=False)
    assert target.read_text() == "unpickling ran code"


def test_trusted_legacy_opt_in_loads_custom_classes(demo_model, tmp_path):
    path = tmp_path / "legacy.ckpt"
    obj = _lightning(demo_model.state_dict())
    obj["hyper_parameters"] = LegacyHyperParameters(arch="ir_demo", lr=0.1)
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="CLI --trust-legacy-checkpoint"):
        models.load(path, "adaface", "ir_demo")
    loaded = models.load(path, "adaface", "ir_demo", trust_legacy_pickle=True)
    np.testing.assert_array_equal(_norms(loaded, "adaface"), _norms(demo_model, "adaface"))


def test_file_without_tensors_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.ckpt"
    torch.save({"epoch": 1, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="holds no tensors"):
        models.load(path, "adaface", "ir_demo")
