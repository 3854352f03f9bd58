"""Test and benchmark support that featnorm itself never uses at run time, so it lives beside the
tests rather than in the installed package.

``recordio_writer``: writes insightface RecordIO datasets (featnorm only reads them).
``recipe``: the deterministic golden-recipe weights of the reference golden outputs.

Tests import it as ``support`` (pytest puts ``tests/`` on ``sys.path`` because ``tests/`` is not a
package); benchmarks put ``tests/`` on ``sys.path`` themselves.
"""
