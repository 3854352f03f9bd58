"""Backbones, preprocessing and golden parity with the official AdaFace code (featnorm.embedding.models).

Golden data: ``shared/reference/adaface/golden_<arch>.npz`` hold the official ``net.py`` outputs
for 4 images with weights from the documented "golden recipe v1" (regenerated here by
``tests/support/recipe.py``), produced through the official ``load_pretrained_model`` from a
Lightning-layout checkpoint (see that folder's README). Tolerances are the README's: embedding
atol 1e-5 and norm rtol 1e-5. Observed benign differences are <= 3.4e-7 (batching, float32
preprocessing), while a BN eps of 2e-5 instead of 1e-5 moves the norm by 2.3e-5 to 3.4e-5 and
RGB instead of BGR by 2.7e-2 to 7.9e-2, so these tolerances catch both mistakes.

The golden norms below are copied from those files (float32 printed in full), so the
self-contained test runs without ``../shared``: images 1 to 3 are defined by a formula and are
regenerated here; image 0 (a scikit-image photo resized with PIL) needs the reference file.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from support.recipe import golden_state_dict
from torch import nn

from featnorm.data.sources import read_image
from featnorm.embedding import models
from featnorm.embedding.models.fold import fold_batchnorm, replace_subsample_pools

GOLDEN_ARCHS = ("ir_18", "ir_50", "ir_101")
# golden_<arch>.npz["norm"][:, 0]: feature norms of images 0..3 (official model, recipe v1).
GOLDEN_NORMS = {
    "ir_18": (13.227189064025879, 13.309061050415039, 13.126277923583984, 13.379095077514648),
    "ir_50": (20.38668441772461, 20.990854263305664, 20.359092712402344, 21.67443084716797),
    "ir_101": (32.13072967529297, 33.51695251464844, 31.64419174194336, 33.469032287597656),
}
# golden_<arch>.npz["flip_fused_norm"][:, 0]: official pre_norm_vector_add flip fusion.
GOLDEN_FLIP_FUSED_NORMS = {
    "ir_18": (25.526084899902344, 25.142330169677734, 25.03850555419922, 25.2624568939209),
    "ir_50": (40.434173583984375, 40.83602523803711, 39.15511703491211, 41.16057586669922),
    "ir_101": (63.60028839111328, 64.31847381591797, 62.545230865478516, 64.21790313720703),
}
EMBEDDING_ATOL = 1e-5
NORM_RTOL = 1e-5


def formula_images_bgr() -> list[np.ndarray]:
    """Golden images 1, 2, 3 (README "Golden data"), rebuilt from their formulas, as BGR uint8."""
    noise = np.random.default_rng(1).integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    ramp = np.round(255 * np.arange(112) / 111).astype(np.uint8)
    gradient = np.empty((112, 112, 3), dtype=np.uint8)
    gradient[..., 0] = ramp[None, :]  # R follows the column
    gradient[..., 1] = ramp[:, None]  # G follows the row
    gradient[..., 2] = 64  # B constant
    blocks = np.random.default_rng(3).integers(0, 256, size=(14, 14, 3), dtype=np.uint8)
    blocks = blocks.repeat(8, axis=0).repeat(8, axis=1)
    return [np.ascontiguousarray(rgb[:, :, ::-1]) for rgb in (noise, gradient, blocks)]


def golden_model(arch: str) -> nn.Module:
    model = models.build("adaface", arch)
    model.load_state_dict(golden_state_dict(model))
    return model.eval()


def manifest(shared_reference, arch: str) -> dict:
    return json.loads((shared_reference / "adaface" / f"{arch}.keys.json").read_text())


# --- architecture ---------------------------------------------------------------------------


@pytest.mark.parametrize("arch", GOLDEN_ARCHS)
def test_state_dict_matches_official_manifest_key_for_key(shared_reference, arch):
    """Keys (with the checkpoint's ``model.`` prefix), order, shapes and dtypes as in net.py."""
    ref = manifest(shared_reference, arch)
    with torch.device("meta"):
        state = models.build("adaface", arch).state_dict()
    assert [f"model.{k}" for k in state] == [e["key"] for e in ref["entries"]]
    assert [list(v.shape) for v in state.values()] == [e["shape"] for e in ref["entries"]]
    assert [str(v.dtype).removeprefix("torch.") for v in state.values()] == [
        e["dtype"] for e in ref["entries"]
    ]
    with torch.device("meta"):
        model = models.build("adaface", arch)
    assert sum(p.numel() for p in model.parameters()) == ref["num_parameters"]


def test_ir_units_table_is_the_depth_data():
    assert models.IR_UNITS["ir_18"] == (2, 2, 2, 2)
    assert models.IR_UNITS["ir_34"] == (3, 4, 6, 3)
    assert models.IR_UNITS["ir_50"] == (3, 4, 14, 3)
    assert models.IR_UNITS["ir_101"] == (3, 13, 30, 3)
    with torch.device("meta"):
        for arch, units in models.IR_UNITS.items():
            assert len(models.build("adaface", arch).body) == sum(units)


def test_adaface_stage1_has_no_shortcut_conv_and_bn_eps_is_1e5():
    with torch.device("meta"):
        model = models.build("adaface", "ir_18")
    assert isinstance(model.body[0].shortcut_layer, nn.MaxPool2d)
    assert isinstance(model.body[2].shortcut_layer, nn.Sequential)  # 64 -> 128
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert {m.eps for m in bns} == {1e-5}
    assert model.output_layer[-1].affine is False


def test_demo_arch_widths_and_output_layer():
    model = models.build("adaface", "ir_demo").eval()
    assert models.IR_ARCHS["ir_demo"].widths == (16, 32, 64, 128)
    assert len(model.body) == 4
    assert model.input_layer[0].out_channels == 16
    linear = model.output_layer[3]
    assert (linear.in_features, linear.out_features) == (128 * 7 * 7, 512)
    x = models.preprocess(formula_images_bgr())
    with torch.inference_mode():
        embedding, norm = model(x)
    assert embedding.shape == (3, 512) and norm.shape == (3, 1)
    torch.testing.assert_close(torch.linalg.vector_norm(embedding, dim=1), torch.ones(3))


@pytest.mark.parametrize(
    ("family", "arch", "match"),
    [
        ("adaface", "ir_51", r"adaface arch 'ir_51' is not known; use one of ir_101, ir_18"),
        ("adaface", "iresnet50", r"is a magface arch: set family='magface'"),
        ("magface", "ir_50", r"is a adaface arch: set family='adaface'"),
        ("arcface", "ir_50", r"family 'arcface' is not known; use one of adaface, magface"),
    ],
)
def test_unknown_family_or_arch_names_the_allowed_values(family, arch, match):
    with pytest.raises(ValueError, match=match):
        models.build(family, arch)


def test_model_accepts_channels_last_input():
    """The official Flatten (.view) fails on channels_last; ours must give the same result."""
    model = golden_model("ir_demo")
    x = models.preprocess(formula_images_bgr())
    with torch.inference_mode():
        _, norm = model(x)
        _, norm_cl = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(norm_cl, norm, rtol=NORM_RTOL, atol=0)


# --- MagFace ----------------------------------------------------------------------------------


def test_magface_iresnet100_layout_matches_the_notes():
    """MagFace notes: iresnet100 has 925 state-dict entries and 65,156,160 parameters."""
    with torch.device("meta"):
        model = models.build("magface", "iresnet100")
    state = model.state_dict()
    assert len(state) == 925
    assert sum(p.numel() for p in model.parameters()) == 65_156_160
    assert "layer1.0.downsample.0.weight" in state  # stage-1 downsample, unlike AdaFace
    assert {"features.weight", "features.bias"} <= set(state)  # affine BatchNorm1d
    assert state["fc.weight"].shape == (512, 512 * 7 * 7)
    assert len(model.layer2) == 13 and len(model.layer3) == 30
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert {m.eps for m in bns} == {2e-5}


def test_magface_norm_is_the_magnitude_of_the_unnormalised_feature():
    model = models.build("magface", "iresnet18")
    model.load_state_dict(golden_state_dict(model))
    model.eval()
    features = {}
    model.features.register_forward_hook(lambda m, i, o: features.setdefault("x", o))
    x = models.preprocess(formula_images_bgr(), family="magface")
    with torch.inference_mode():
        embedding, norm = model(x)
    torch.testing.assert_close(norm[:, 0], torch.linalg.vector_norm(features["x"], dim=1))
    torch.testing.assert_close(embedding * norm, features["x"])


# --- preprocessing --------------------------------------------------------------------------


def test_preprocess_values_channel_order_and_range():
    # one pixel each: B=0, G=51, R=255 (51/255 = 0.2 -> -0.6 exactly in float64)
    image = np.zeros((112, 112, 3), dtype=np.uint8)
    image[..., 1], image[..., 2] = 51, 255
    x = models.preprocess([image])
    assert x.shape == (1, 3, 112, 112) and x.dtype == torch.float32 and x.is_contiguous()
    assert x[0, 0, 0, 0].item() == -1.0  # channel 0 is blue
    assert x[0, 1, 0, 0].item() == np.float32(-0.6)
    assert x[0, 2, 0, 0].item() == 1.0
    m = models.preprocess([image], family="magface")
    assert m[0, :, 0, 0].tolist() == [0.0, np.float32(51) / np.float32(255), 1.0]


def test_preprocess_is_bit_exact_with_official_float64_to_input():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = cv2.resize(np.dstack([levels] * 3), (112, 112), interpolation=cv2.INTER_NEAREST)
    expected = ((image.astype(np.float64) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    x = models.preprocess([image])[0].numpy()
    np.testing.assert_array_equal(x, expected.astype(np.float32))


def test_preprocess_replicates_grey_and_resizes_other_sizes():
    grey = np.random.default_rng(0).integers(0, 256, size=(112, 112), dtype=np.uint8)
    torch.testing.assert_close(
        models.preprocess([grey]), models.preprocess([np.dstack([grey] * 3)]), rtol=0, atol=0
    )
    big = np.random.default_rng(1).integers(0, 256, size=(224, 200, 3), dtype=np.uint8)
    resized, was_resized = models.fit_input_size(big)
    assert was_resized and resized.shape == (112, 112, 3)
    assert models.preprocess([big]).shape == (1, 3, 112, 112)


def test_preprocess_rejects_non_uint8_and_alpha():
    with pytest.raises(ValueError, match="dtype is float32; expected uint8"):
        models.preprocess([np.zeros((112, 112, 3), dtype=np.float32)])
    with pytest.raises(ValueError, match=r"shape is \(112, 112, 4\)"):
        models.preprocess([np.zeros((112, 112, 4), dtype=np.uint8)])


# --- golden parity --------------------------------------------------------------------------


@pytest.mark.parametrize("arch", GOLDEN_ARCHS)
def test_golden_norms_from_formula_images_without_shared_data(arch, tmp_path):
    """Recipe weights + images 1..3 from their formulas, through PNG files and featnorm's IO."""
    paths = []
    for i, image in enumerate(formula_images_bgr(), start=1):
        paths.append(tmp_path / f"{i}.png")
        assert cv2.imwrite(str(paths[-1]), image)
    x = models.preprocess([read_image(p).image for p in paths])
    with torch.inference_mode():
        _, norm = golden_model(arch)(x)
    np.testing.assert_allclose(norm[:, 0].numpy(), GOLDEN_NORMS[arch][1:], rtol=NORM_RTOL, atol=0)


@pytest.mark.parametrize("arch", GOLDEN_ARCHS)
def test_recipe_regenerates_the_reference_weights(shared_reference, arch):
    """recipe_checks.json: float64 sum, abs sum and first element of every recipe tensor."""
    checks = json.loads((shared_reference / "adaface" / "recipe_checks.json").read_text())
    entries = [(e["key"], tuple(e["shape"])) for e in manifest(shared_reference, arch)["entries"]]
    state = golden_state_dict(entries)
    for check in checks["archs"][arch]["entries"]:
        tensor = state[check["key"]].double()
        assert math.isclose(tensor.sum().item(), check["sum_f64"], rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(tensor.abs().sum().item(), check["abs_sum_f64"], rel_tol=1e-9), check
        assert tensor.flatten()[0].item() == check["first"], check


@pytest.mark.parametrize("arch", GOLDEN_ARCHS)
def test_golden_parity_through_checkpoint_file_and_png_images(shared_reference, arch, tmp_path):
    """Checkpoint rebuilt from the manifest, loaded by featnorm, images read back from PNG."""
    golden = np.load(shared_reference / "adaface" / f"golden_{arch}.npz")
    entries = [(e["key"], tuple(e["shape"])) for e in manifest(shared_reference, arch)["entries"]]
    state = golden_state_dict(entries)  # keys keep the "model." prefix of a Lightning .ckpt
    state.update(
        {  # a head as a trained AdaFace file has it; the loader must ignore it
            "head.kernel": torch.zeros(512, 10),
            "head.t": torch.zeros(1),
            "head.batch_mean": torch.full((1,), 20.0),
            "head.batch_std": torch.full((1,), 100.0),
        }
    )
    checkpoint = tmp_path / f"{arch}.ckpt"
    torch.save({"epoch": 1, "global_step": 10, "state_dict": state}, checkpoint)
    model = models.load(checkpoint, "adaface", arch)
    assert not model.training

    paths = []
    for i, image in enumerate(golden["images_bgr_uint8"]):
        paths.append(tmp_path / f"{i}.png")
        assert cv2.imwrite(str(paths[-1]), image)
    x = models.preprocess([read_image(p).image for p in paths])
    np.testing.assert_allclose(x.numpy(), golden["input_tensor"], rtol=0, atol=1e-7)
    with torch.inference_mode():
        embedding, norm = model(x)
    np.testing.assert_allclose(embedding.numpy(), golden["embedding"], rtol=0, atol=EMBEDDING_ATOL)
    np.testing.assert_allclose(norm.numpy(), golden["norm"], rtol=NORM_RTOL, atol=0)
    np.testing.assert_allclose(golden["norm"][:, 0], GOLDEN_NORMS[arch], rtol=0, atol=0)


# --- BatchNorm folding ----------------------------------------------------------------------


@pytest.mark.parametrize(("family", "arch"), [("adaface", "ir_18"), ("magface", "iresnet18")])
def test_folding_batchnorm_keeps_outputs_and_leaves_the_model_alone(family, arch):
    model = models.build(family, arch)
    model.load_state_dict(golden_state_dict(model))
    model.eval()
    folded = replace_subsample_pools(fold_batchnorm(model))
    x = models.preprocess(formula_images_bgr(), family=family)
    with torch.inference_mode():
        embedding, norm = model(x)
        f_embedding, f_norm = folded(x)
    np.testing.assert_allclose(f_norm.numpy(), norm.numpy(), rtol=NORM_RTOL, atol=0)
    np.testing.assert_allclose(f_embedding.numpy(), embedding.numpy(), rtol=0, atol=EMBEDDING_ATOL)

    def count_bn(m: nn.Module) -> int:
        return sum(isinstance(c, nn.modules.batchnorm._BatchNorm) for c in m.modules())

    # only the BatchNorms in front of a conv stay: one per unit plus the final BN2d
    units = sum(models.IR_UNITS["ir_18"])
    assert count_bn(folded) == units + 1
    assert count_bn(model) > count_bn(folded)


@pytest.mark.parametrize("size", [112, 56, 7, 15])
@pytest.mark.parametrize("stride", [1, 2])
def test_subsample_pool_replacement_is_exact(size, stride):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    pool = nn.Sequential(nn.MaxPool2d(kernel_size=1, stride=stride))
    expected = pool(x)
    replaced = replace_subsample_pools(pool)
    assert not any(isinstance(m, nn.MaxPool2d) for m in replaced.modules())
    torch.testing.assert_close(replaced(x), expected, rtol=0, atol=0)
    kept = replace_subsample_pools(nn.Sequential(nn.MaxPool2d(kernel_size=2)))
    assert isinstance(kept[0], nn.MaxPool2d)  # a real pool is left alone
