"""Test and benchmark support that featnorm itself never uses at run time.

``recordio_writer``: writes insightface RecordIO datasets (featnorm only reads them).
``recipe``: the deterministic golden-recipe weights of the reference golden outputs.
"""
