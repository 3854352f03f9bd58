"""``python -m featnorm <step>``: one module per step group and the step registry. Nothing in
the package imports it."""
