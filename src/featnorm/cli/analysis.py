"""``python -m featnorm merge | correlate | differences | decompose | by-class-size | table1 |
compare | training-length | plot | summary``: the analysis steps over finished shards.

Registered in :mod:`featnorm.cli.steps`; :mod:`featnorm.cli.main` builds the parser.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass

from featnorm import options
from featnorm.cli.steps import save_figure, step

logger = logging.getLogger("featnorm")


def _read_samples(path: str, x_columns: list[str]):
    """The columns of samples.parquet the tables use (``analysis.columns.table_columns``),
    strings kept in Arrow (a few bytes per row instead of a Python object each)."""
    import pyarrow.parquet as pq

    from featnorm.analysis.columns import table_columns

    columns = table_columns(pq.read_schema(path).names, x_columns)
    return pq.read_table(path, columns=columns).to_pandas(types_mapper=_arrow_strings)


def _arrow_strings(arrow_type):
    """pandas dtype for an Arrow type in ``to_pandas``: Arrow-backed strings, else the default."""
    import pandas as pd
    import pyarrow as pa

    return pd.StringDtype("pyarrow") if arrow_type == pa.string() else None


def _merge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True)
    p.add_argument("--brisque", nargs="+", required=True, help="all BRISQUE shard tables")
    p.add_argument("--embed", nargs="+", required=True, help="all embedding shards of the model")
    p.add_argument("--model", required=True)
    p.add_argument(
        "--policies",
        nargs="*",
        required=True,
        choices=options.STANDARDISATION_POLICIES,
        help="standardisation policies",
    )
    p.add_argument("--min-class-size", type=int, required=True)
    p.add_argument("--ddof", type=int, required=True, choices=options.DDOFS)
    p.add_argument("--residual-degree", type=int, required=True)
    p.add_argument(
        "--references", help="the model's references.parquet (left out: no reference columns)"
    )
    p.add_argument("--samples", required=True, help="output: samples.parquet")
    p.add_argument("--class-stats", required=True, help="output: class_stats.parquet")


@step("merge", _merge_args)
def run_merge(args: argparse.Namespace) -> None:
    """Merge manifest, BRISQUE and norms; standardise; per-class statistics."""
    from featnorm import tableio
    from featnorm.analysis import class_stats, merge, standardisation

    manifest = tableio.read_table(args.manifest)
    merged = merge.merge_samples(
        manifest,
        tableio.read_tables(args.brisque),
        tableio.read_tables(args.embed, columns=["sample_id", "feature_norm", "status"]),
    )
    if args.references:
        from featnorm.quality import references

        merged = references.join_references(merged, tableio.read_table(args.references))
    samples, info = standardisation.standardise(
        merged,
        policies=args.policies,
        min_class_size=args.min_class_size,
        ddof=args.ddof,
        residual_degree=args.residual_degree,
    )
    params = {
        "model": args.model,
        "policies": args.policies,
        "standardise": info,
        "brisque_meta": tableio.read_metadata(args.brisque[0]),
        "embed_meta": tableio.read_metadata(args.embed[0]),
        "references_meta": tableio.read_metadata(args.references) if args.references else None,
    }
    tableio.write_table(samples, args.samples, params=params)
    tableio.write_table(class_stats.class_stats(samples), args.class_stats, params=params)
    logger.info("samples: %d rows -> %s", len(samples), args.samples)


def _correlate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--policies", nargs="*", required=True, choices=options.STANDARDISATION_POLICIES)
    p.add_argument("--methods", nargs="+", required=True, choices=options.CORRELATION_METHODS)
    p.add_argument("--replicates", type=int, required=True)
    p.add_argument("--confidence", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--output", required=True, help="correlations.csv")


@step("correlate", _correlate_args)
def run_correlate(args: argparse.Namespace) -> None:
    """Correlations of every norm column with the quality references (cluster bootstrap)."""
    from featnorm import tableio
    from featnorm.analysis import correlations
    from featnorm.analysis.columns import norm_columns

    x_columns = norm_columns(args.policies)
    samples = _read_samples(args.samples, x_columns)
    table = correlations.correlation_table(
        samples,
        model=args.model,
        x_columns=x_columns,
        methods=args.methods,
        replicates=args.replicates,
        confidence=args.confidence,
        seed=args.seed,
    )
    tableio.write_text(table.to_csv(index=False), args.output)


def _contrast_args(
    p: argparse.ArgumentParser, *, methods: bool = True, size_bins: bool = False
) -> None:
    p.add_argument("--samples", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--policies", nargs="*", required=True, choices=options.STANDARDISATION_POLICIES)
    if methods:
        p.add_argument("--methods", nargs="+", required=True, choices=options.CORRELATION_METHODS)
    if size_bins:
        p.add_argument(
            "--size-bins",
            nargs="+",
            type=int,
            required=True,
            help="lower edges of the class-size bands, ascending",
        )
    p.add_argument("--replicates", type=int, required=True)
    p.add_argument("--confidence", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--output", required=True)


def _write_contrast(args: argparse.Namespace, build: Callable, **extra) -> None:
    """Read samples, build one contrast table with the shared bootstrap settings, write CSV."""
    from featnorm import tableio
    from featnorm.analysis.columns import norm_columns

    x_columns = norm_columns(args.policies)
    table = build(
        _read_samples(args.samples, x_columns),
        model=args.model,
        x_columns=x_columns,
        replicates=args.replicates,
        confidence=args.confidence,
        seed=args.seed,
        **extra,
    )
    tableio.write_text(table.to_csv(index=False), args.output)


@step("differences", _contrast_args)
def run_differences(args: argparse.Namespace) -> None:
    """Paired r(standardised, y) - r(raw norm, y) with cluster-bootstrap CIs (differences.csv)."""
    from featnorm.analysis import contrast_tables

    _write_contrast(args, contrast_tables.differences_table, methods=args.methods)


@step("decompose", lambda p: _contrast_args(p, methods=False))
def run_decompose(args: argparse.Namespace) -> None:
    """Within-class and between-class Pearson r of each norm column (decomposition.csv)."""
    from featnorm.analysis import contrast_tables

    _write_contrast(args, contrast_tables.decomposition_table)


@step("by-class-size", lambda p: _contrast_args(p, size_bins=True))
def run_by_class_size(args: argparse.Namespace) -> None:
    """Correlations within class-size bands (by_class_size.csv)."""
    from featnorm.analysis import contrast_tables

    _write_contrast(
        args, contrast_tables.by_class_size_table, methods=args.methods, size_bins=args.size_bins
    )


def _table1_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--correlations", nargs="+", required=True, help="every model's CSV")
    p.add_argument("--confidence", type=float, required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--markdown", required=True)


@step("table1", _table1_args)
def run_table1(args: argparse.Namespace) -> None:
    """The seed's Table 1 (Pearson r with BRISQUE, raw and standardised) for every model."""
    from featnorm import tableio
    from featnorm.analysis.columns import GROUND_TRUTH_QUALITY
    from featnorm.report import table1

    corr = tableio.read_csvs(args.correlations)
    table = table1.table1(corr)
    demo = bool((corr["y"] == GROUND_TRUTH_QUALITY).any())  # only the demo has it
    tableio.write_text(table.frame.to_csv(index=False), args.csv)
    tableio.write_text(
        table1.table1_markdown(table, confidence=args.confidence, demo=demo), args.markdown
    )


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--correlations", nargs="+", required=True, help="every model's CSV")
    p.add_argument("--output", required=True, help="comparison.csv")
    p.add_argument("--png", required=True, help="forest plot of all models")
    p.add_argument("--svg", required=True)
    p.add_argument(
        "--edc", nargs="*", default=[], help="every model's edc.csv (adds the pAUC rows and panel)"
    )


@step("compare", _compare_args)
def run_compare(args: argparse.Namespace) -> None:
    """All models' correlations side by side, with a forest plot."""
    import pandas as pd

    from featnorm import tableio
    from featnorm.analysis import correlations
    from featnorm.report import plots

    corr = tableio.read_csvs(args.correlations)
    table = correlations.compare_models(corr)
    edc_table = _read_edc(args.edc)
    tableio.write_text(_with_pauc(table, edc_table).to_csv(index=False), args.output)
    models = ", ".join(pd.unique(corr["model"]))
    fig = plots.forest(table, title=f"All correlations, models: {models}")
    if edc_table is not None:
        from featnorm.report import edc_plots

        fig = edc_plots.add_pauc_panel(fig, edc_table)
    save_figure(fig, args.png, args.svg)


def _read_edc(paths: list[str]):
    """Every model's edc.csv in one table, or None when there is none (EDC off)."""
    from featnorm import tableio

    return tableio.read_csvs(paths) if paths else None


def _with_pauc(table, edc_table):
    """The comparison table with the EDC pAUC rows appended (when there are any)."""
    import pandas as pd

    from featnorm.report import edc_plots

    if edc_table is None:
        return table
    return pd.concat([table, edc_plots.pauc_comparison(edc_table)], ignore_index=True)


def _check_one_per_model(step_name: str, models: list[str], **lists: list) -> None:
    """Raise ValueError unless every list in ``lists`` has one entry per model."""
    if any(len(v) != len(models) for v in lists.values()):
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in lists)
        got = ", ".join(str(len(v)) for v in lists.values())
        raise ValueError(
            f"{step_name} needs one {flags} per --models entry; got {got} for {len(models)} models"
        )


def _training_length_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--epochs", nargs="+", type=int, required=True, help="one per model")
    p.add_argument("--correlations", nargs="+", required=True, help="one CSV per model")
    p.add_argument("--curves", nargs="+", required=True, help="one training_curve.csv per model")
    p.add_argument("--method", required=True, help="correlation method of the proxy rows")
    p.add_argument("--confidence", type=float, required=True)
    p.add_argument("--output", required=True, help="training_length.csv")
    p.add_argument("--png", required=True)
    p.add_argument("--svg", required=True)


@step("training-length", _training_length_args)
def run_training_length(args: argparse.Namespace) -> None:
    """Class-size effect and proxy agreement against training length (table and figure)."""
    from featnorm import tableio
    from featnorm.report import training_length

    _check_one_per_model(
        "training-length",
        args.models,
        epochs=args.epochs,
        correlations=args.correlations,
        curves=args.curves,
    )
    table = training_length.collect(
        {m: tableio.read_csv(c) for m, c in zip(args.models, args.correlations, strict=True)},
        {m: tableio.read_csv(c) for m, c in zip(args.models, args.curves, strict=True)},
        dict(zip(args.models, args.epochs, strict=True)),
        method=args.method,
    )
    tableio.write_text(table.to_csv(index=False), args.output)
    save_figure(training_length.plot(table, confidence=args.confidence), args.png, args.svg)


def _plot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", required=True, choices=options.FIGURES)
    p.add_argument("--model", required=True)
    tables = dict.fromkeys(t for names in options.FIGURE_INPUTS.values() for t in names)
    for table in tables:  # one flag per table that some figure is drawn from
        figures = ", ".join(f for f, names in options.FIGURE_INPUTS.items() if table in names)
        p.add_argument(options.table_flag(table), help=f"{table} table ({figures})")
    p.add_argument(
        "--policies",
        nargs="*",
        default=None,
        choices=options.STANDARDISATION_POLICIES,
        help="standardisation policies",
    )
    p.add_argument("--png", required=True)
    p.add_argument("--svg", required=True)


@step("plot", _plot_args)
def run_plot(args: argparse.Namespace) -> None:
    """One figure of one model (PNG and SVG)."""
    from featnorm import tableio
    from featnorm.analysis.columns import norm_columns
    from featnorm.report import plots

    def need(flag: str, value):
        if value is None:
            raise ValueError(f"plot --kind {args.kind} needs {flag}")
        return value

    def read(table: str):
        path = need(options.table_flag(table), getattr(args, table))
        return tableio.read_table(path) if path.endswith(".parquet") else tableio.read_csv(path)

    kind = args.kind
    extra = {}
    if kind in options.FIGURES_WITH_POLICIES:
        extra["x_columns"] = norm_columns(need("--policies", args.policies))
    tables = [read(table) for table in options.FIGURE_INPUTS[kind]]
    fig = plots.FIGURES[kind](*tables, model=args.model, **extra)
    save_figure(fig, args.png, args.svg)


@dataclass(frozen=True)
class _ModelPaths:
    """One model's result files, as the summary step's flags list them (one per model each)."""

    model: str
    correlations: str
    samples: str
    class_stats: str
    differences: str
    decomposition: str
    by_class_size: str

    def read(self):
        """The model's tables as a :class:`featnorm.report.summary.ModelResults`."""
        from featnorm import tableio
        from featnorm.report import summary

        return summary.ModelResults(
            correlations=tableio.read_csv(self.correlations),
            class_stats=tableio.read_table(self.class_stats),
            samples=tableio.read_table(self.samples, columns=["label", "status", "z_excluded"]),
            standardise=tableio.read_metadata(self.samples).get("standardise", {}),
            differences=tableio.read_csv(self.differences),
            decomposition=tableio.read_csv(self.decomposition),
            by_class_size=tableio.read_csv(self.by_class_size),
            references=tableio.read_metadata(self.samples).get("references_meta"),
        )


def _summary_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--correlations", nargs="+", required=True, help="one CSV per model")
    p.add_argument("--samples", nargs="+", required=True, help="one samples.parquet per model")
    p.add_argument("--class-stats", nargs="+", required=True, help="one per model")
    p.add_argument("--differences", nargs="+", required=True, help="differences.csv per model")
    p.add_argument("--decomposition", nargs="+", required=True, help="decomposition.csv per model")
    p.add_argument("--by-class-size", nargs="+", required=True, help="by_class_size.csv per model")
    p.add_argument("--confidence", type=float, required=True)
    p.add_argument("--output", required=True, help="summary.md")
    p.add_argument("--edc", nargs="*", default=[], help="one edc.csv per model (EDC section)")


@step("summary", _summary_args)
def run_summary(args: argparse.Namespace) -> None:
    """The plain-text summary of the study (results/summary.md)."""
    from featnorm import tableio
    from featnorm.report import summary

    _check_one_per_model(
        "summary",
        args.models,
        correlations=args.correlations,
        samples=args.samples,
        class_stats=args.class_stats,
        differences=args.differences,
        decomposition=args.decomposition,
        by_class_size=args.by_class_size,
    )
    paths = [
        _ModelPaths(*files)
        for files in zip(
            args.models,
            args.correlations,
            args.samples,
            args.class_stats,
            args.differences,
            args.decomposition,
            args.by_class_size,
            strict=True,
        )
    ]
    per_model = {p.model: p.read() for p in paths}
    text = summary.render(per_model, confidence=args.confidence)
    edc_table = _read_edc(args.edc)
    if edc_table is not None:
        text += summary.edc_section(edc_table, confidence=args.confidence)
    tableio.write_text(text, args.output)
