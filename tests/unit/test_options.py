"""One source per option (issue 14): the schema's enums and the CLI's choices equal featnorm.options."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from featnorm import options
from featnorm.cli.main import build_parser
from featnorm.config import archs

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())

# schema path (properties joined by ".", <name> for a per-model entry, [] for array items) ->
# the constant that holds its values. A new enum in the schema needs an entry here.
SCHEMA_ENUMS = {
    "dataset.format": options.DATASET_FORMATS,
    "dataset.demo.image_format": options.DEMO_IMAGE_FORMATS,
    "models.<name>.family": options.MODEL_FAMILIES,
    "models.<name>.train.precision": options.TRAIN_PRECISIONS,
    "train.precision": options.TRAIN_PRECISIONS,
    "embed.device": options.EMBED_DEVICES,
    "embed.flip_fusion": tuple(options.FLIP_FUSIONS),
    "embed.precision": options.EMBED_PRECISIONS,
    "brisque.precision": options.BRISQUE_PRECISIONS,
    "analysis.ddof": options.DDOFS,
    "analysis.policies[]": options.STANDARDISATION_POLICIES,
    "analysis.methods[]": options.CORRELATION_METHODS,
}

# (step, flag) -> the constant of its argparse choices. A new `choices=` needs an entry here.
CLI_CHOICES = {
    ("manifest", "--format"): options.DATASET_FORMATS,
    ("train-demo", "--precision"): options.TRAIN_PRECISIONS,
    ("brisque", "--precision"): options.BRISQUE_PRECISIONS,
    ("embed", "--family"): options.MODEL_FAMILIES,
    ("embed", "--device"): options.EMBED_DEVICES,
    ("embed", "--flip-fusion"): tuple(options.FLIP_FUSIONS),
    ("embed", "--precision"): options.EMBED_PRECISIONS,
    ("merge", "--policies"): options.STANDARDISATION_POLICIES,
    ("merge", "--ddof"): options.DDOFS,
    ("correlate", "--policies"): options.STANDARDISATION_POLICIES,
    ("correlate", "--methods"): options.CORRELATION_METHODS,
    ("differences", "--policies"): options.STANDARDISATION_POLICIES,
    ("differences", "--methods"): options.CORRELATION_METHODS,
    ("decompose", "--policies"): options.STANDARDISATION_POLICIES,
    ("by-class-size", "--policies"): options.STANDARDISATION_POLICIES,
    ("by-class-size", "--methods"): options.CORRELATION_METHODS,
    ("plot", "--kind"): options.FIGURES,
    ("plot", "--policies"): options.STANDARDISATION_POLICIES,
    ("edc", "--policies"): options.STANDARDISATION_POLICIES,
}


def _schema_enums(schema: dict, path: str = "") -> dict[str, list]:
    """Every ``enum`` in ``schema``, by the path of the key that carries it."""
    found = {}
    if "enum" in schema:
        found[path] = schema["enum"]
    for name, sub in schema.get("properties", {}).items():
        found.update(_schema_enums(sub, f"{path}.{name}" if path else name))
    if isinstance(schema.get("additionalProperties"), dict):
        found.update(_schema_enums(schema["additionalProperties"], f"{path}.<name>"))
    if isinstance(schema.get("items"), dict):
        found.update(_schema_enums(schema["items"], f"{path}[]"))
    return found


def _cli_choices() -> dict[tuple[str, str], list]:
    """The ``choices`` of every flag of every step of ``python -m featnorm``."""
    found = {}
    parser = build_parser()
    steps = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for step, sub in steps.choices.items():
        for action in sub._actions:
            if action.choices is not None:
                found[(step, action.option_strings[0])] = list(action.choices)
    return found


def test_the_walk_finds_the_enums_inside_models_and_array_items():
    found = _schema_enums(SCHEMA)
    assert found["models.<name>.train.precision"] == ["auto", "fp32", "bf16"]
    assert found["analysis.methods[]"] == ["pearson", "spearman", "kendall"]


@pytest.mark.parametrize("path", sorted(_schema_enums(SCHEMA)))
def test_every_schema_enum_equals_its_options_constant(path):
    assert path in SCHEMA_ENUMS, f"schema enum {path} has no constant in featnorm.options"
    assert _schema_enums(SCHEMA)[path] == list(SCHEMA_ENUMS[path])


def test_every_mapped_schema_path_is_an_enum_of_the_schema():
    assert sorted(SCHEMA_ENUMS) == sorted(_schema_enums(SCHEMA))


def test_every_cli_choice_equals_its_options_constant():
    found = _cli_choices()
    assert sorted(found) == sorted(CLI_CHOICES)
    for key, values in found.items():
        assert values == list(CLI_CHOICES[key]), key


def test_each_family_has_an_architecture_table():
    assert tuple(archs.ARCHS) == options.MODEL_FAMILIES


def test_every_figure_lists_its_input_tables_and_the_subsets_name_figures():
    assert all(options.FIGURE_INPUTS[f] for f in options.FIGURES)
    assert set(options.FIGURES_WITH_POLICIES) <= set(options.FIGURES)
    assert set(options.GROUND_TRUTH_FIGURES) <= set(options.FIGURES)


def test_options_and_the_parser_import_no_heavy_library():
    """The workflow imports featnorm.options while planning, and every step parses its flags
    before it imports what it needs: neither may pull in torch, OpenCV or matplotlib."""
    code = (
        "import sys; from featnorm.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'cv2', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
