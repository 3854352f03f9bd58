"""Exact comparison of two ``results/`` folders, for refactors that must change no output.

Parquet tables must be equal with their metadata, CSV, Markdown, PNG and image files byte-equal,
checkpoints equal tensor by tensor (the archive bytes carry a temporary file name), SVGs equal
without matplotlib's date and per-run ids. Logs and benchmark timings are left out. Exits 1 when
any file differs, is missing or is extra::

    python tests/scripts/compare_results.py <before>/results <after>/results
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

SKIPPED = {"logs", "benchmarks"}  # run-specific: timings and log lines
SVG_RUN_SPECIFIC = ("<dc:date>", 'id="', "clip-path", "xlink:href")


def _files(root: Path) -> set[Path]:
    return {
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and not set(p.relative_to(root).parts) & SKIPPED
    }


def _svg_body(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if not any(tag in line for tag in SVG_RUN_SPECIFIC)]


def _same_checkpoint(a: Path, b: Path) -> bool:
    import torch

    ca, cb = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    sa, sb = ca["state_dict"], cb["state_dict"]
    tensors_equal = list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    return tensors_equal and ca["hyper_parameters"] == cb["hyper_parameters"]


def same(a: Path, b: Path) -> bool:
    """Whether two output files hold the same result (see the module docstring)."""
    if a.suffix == ".parquet":
        ta, tb = pq.read_table(a), pq.read_table(b)
        return ta.equals(tb) and ta.schema.metadata == tb.schema.metadata
    if a.suffix == ".svg":
        return _svg_body(a) == _svg_body(b)
    if a.suffix == ".ckpt":
        return _same_checkpoint(a, b)
    return a.read_bytes() == b.read_bytes()


def main(before: str, after: str) -> int:
    """Compare every output file; print what differs and a count; 1 when anything differs."""
    a, b = Path(before), Path(after)
    files_a, files_b = _files(a), _files(b)
    problems = [f"missing {rel}" for rel in sorted(files_a - files_b)]
    problems += [f"extra {rel}" for rel in sorted(files_b - files_a)]
    problems += [
        f"differs {rel}" for rel in sorted(files_a & files_b) if not same(a / rel, b / rel)
    ]
    print("\n".join(problems))
    print(f"{len(files_a)} files compared; {len(problems)} differ, missing or extra")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
