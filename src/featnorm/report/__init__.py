"""Figures, the summary and Table 1: read analysis and evaluation tables, write what people read."""
