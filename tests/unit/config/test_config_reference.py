"""docs/configuration.md and config.yaml stay consistent with the schema."""

import importlib.util
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def _leaf_keys(schema: dict, prefix: str = "") -> list[str]:
    """Dotted names of every documented leaf key (models.<name>.* for the per-model entries)."""
    keys = []
    for name, sub in schema.get("properties", {}).items():
        dotted = f"{prefix}{name}"
        if sub.get("type") == "object" and "properties" in sub:
            keys += _leaf_keys(sub, f"{dotted}.")
        elif isinstance(sub.get("additionalProperties"), dict):
            keys += _leaf_keys(sub["additionalProperties"], f"{dotted}.<name>.")
        else:
            keys.append(dotted)
    return keys


def test_every_schema_key_has_a_description_and_defaults_where_optional():
    def walk(schema, path):
        for name, sub in schema.get("properties", {}).items():
            assert sub.get("description"), f"{path}{name} has no description"
            assert "type" in sub, f"{path}{name} has no type"
            walk(sub, f"{path}{name}.")

    walk(SCHEMA, "")


def _reference_page():
    """docs/configuration.py, the generator of docs/configuration.md, loaded from its path."""
    spec = importlib.util.spec_from_file_location(
        "configuration_page", REPO / "docs" / "configuration.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_the_schema_rendered():
    """docs/configuration.md is exactly what the generator makes of the schema: a key added,
    changed or removed in either without regenerating fails here."""
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == _reference_page().render(SCHEMA), "stale: run `python docs/configuration.py`"


def test_configuration_reference_has_one_row_per_key():
    """The generator itself leaves no key out: the rows are every leaf key, every section and
    every per-model entry of the schema (walked here independently of the generator)."""
    rendered = _reference_page().render(SCHEMA)
    rows = re.findall(r"^\| `([^`]+)` \|", rendered, flags=re.M)
    sections = {k.rsplit(".", 1)[0] for k in _leaf_keys(SCHEMA) if "." in k}
    assert len(rows) == len(set(rows))
    assert set(rows) == set(_leaf_keys(SCHEMA)) | sections | {"models"}


def test_config_yaml_validates_against_the_schema_with_nothing_undocumented():
    """config.yaml uses only schema keys; validate() also fills every default."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    assert config["analysis"]["bootstrap_replicates"] == 1000


def test_arch_description_names_every_arch_of_each_family():
    """The schema's `arch` description (and so docs/configuration.md) lists exactly the
    architectures the loader knows, family by family."""
    from featnorm.config.archs import ARCHS

    arch = SCHEMA["properties"]["models"]["additionalProperties"]["properties"]["arch"]
    listed = {}
    for part in arch["description"].rstrip(".").split(";"):
        family, names = part.split(":", 1)
        listed[family.strip()] = sorted(
            re.findall(r"[a-z]+_?[a-z0-9]+", names.replace(" or ", ","))
        )
    assert listed == {family: sorted(archs) for family, archs in ARCHS.items()}
