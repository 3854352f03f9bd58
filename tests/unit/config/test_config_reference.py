"""docs/configuration.md and config.yaml stay consistent with the schema."""

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


def test_configuration_reference_names_every_key():
    table = (REPO / "docs" / "configuration.md").read_text()
    # rows may group keys ("`train.epochs` / `batch_size`"): the section and the leaf must appear
    missing = [
        k
        for k in _leaf_keys(SCHEMA)
        if f"`{k.split('.')[0]}" not in table or k.split(".")[-1] not in table
    ]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_config_yaml_validates_against_the_schema_with_nothing_undocumented():
    """config.yaml uses only schema keys; validate() also fills every default."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    assert config["analysis"]["bootstrap_replicates"] == 1000
