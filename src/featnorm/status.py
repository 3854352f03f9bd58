"""Every per-image status featnorm writes, and what it means.

A per-image table (``brisque/shard-*``, ``embed/<model>/shard-*``) has one row per manifest row
and a ``status`` column: ``ok`` when the score was computed, else one of the reasons below (the
score is then NaN). ``samples.parquet`` joins the reasons of both stages as
``brisque:<status>; embed:<status>``. Every module names a status through these constants; this is
the only place the names are spelled (``tests/unit/test_structure.py`` checks it, and checks the
status table of ``docs/bad-input.md`` against ``MEANINGS``).
"""

from __future__ import annotations

__all__ = [
    "DEGENERATE_FEATURES",
    "EMPTY_FILE",
    "FLAT_IMAGE",
    "FLOAT_OUT_OF_RANGE",
    "MEANINGS",
    "MISSING",
    "MISSING_FILE",
    "NEAR_FLAT_IMAGE",
    "NON_FINITE",
    "OK",
    "RECORDIO_BAD_INDEX",
    "RECORD_BAD_CONTINUATION",
    "RECORD_BAD_HEADER",
    "RECORD_BAD_MAGIC",
    "RECORD_NOT_INDEXED",
    "RECORD_OUT_OF_RANGE",
    "RECORD_TRUNCATED",
    "SINGLE_IMAGE_CLASS",
    "TOO_LARGE",
    "TOO_SMALL",
    "UNDECODABLE",
    "UNREADABLE_FILE",
    "UNSUPPORTED_CHANNELS",
    "UNSUPPORTED_INPUT",
]

OK = "ok"

# reading and decoding a file or a record (featnorm.data.images, featnorm.data.sources, featnorm.data.recordio)
MISSING_FILE = "missing_file"
EMPTY_FILE = "empty_file"
UNREADABLE_FILE = "unreadable_file"
UNDECODABLE = "undecodable"
TOO_LARGE = "too_large"
UNSUPPORTED_CHANNELS = "unsupported_channels"
RECORDIO_BAD_INDEX = "recordio_bad_index"
RECORD_NOT_INDEXED = "record_not_indexed"
RECORD_OUT_OF_RANGE = "record_out_of_range"
RECORD_BAD_MAGIC = "record_bad_magic"
RECORD_TRUNCATED = "record_truncated"
RECORD_BAD_CONTINUATION = "record_bad_continuation"
RECORD_BAD_HEADER = "record_bad_header"

# the image is decoded but cannot be scored (featnorm.quality.brisque, featnorm.embedding.embed)
TOO_SMALL = "too_small"
FLAT_IMAGE = "flat_image"
NEAR_FLAT_IMAGE = "near_flat_image"
DEGENERATE_FEATURES = "degenerate_features"
FLOAT_OUT_OF_RANGE = "float_out_of_range"
UNSUPPORTED_INPUT = "unsupported_input"

# joining the per-image tables (featnorm.analysis.merge.merge_samples)
MISSING = "missing"
NON_FINITE = "non_finite"

# the face-quality references from the embeddings (featnorm.quality.references)
SINGLE_IMAGE_CLASS = "single_image_class"

MEANINGS: dict[str, str] = {
    OK: "decoded and scored",
    MISSING_FILE: "the file (or the `.rec` of a record) does not exist",
    EMPTY_FILE: "the file has zero bytes",
    UNREADABLE_FILE: "an OS error while reading (permissions, an I/O error)",
    UNDECODABLE: "not an image OpenCV decodes: corrupt or truncated header, not an image",
    TOO_LARGE: "the header declares more than 2^27 pixels (about 134 MP); not decoded",
    UNSUPPORTED_CHANNELS: "a channel count other than 1, 3 or 4",
    RECORDIO_BAD_INDEX: "the `.idx` beside the `.rec` is missing or malformed",
    RECORD_NOT_INDEXED: "the record index is not in the `.idx`",
    RECORD_OUT_OF_RANGE: "the record's offset lies past the end of the `.rec`",
    RECORD_BAD_MAGIC: "no RecordIO frame magic at the record's offset",
    RECORD_TRUNCATED: "the `.rec` ends inside the record",
    RECORD_BAD_CONTINUATION: "the parts of a split record are out of order",
    RECORD_BAD_HEADER: "the record is shorter than its IRHeader and labels",
    TOO_SMALL: "under 32 px on a side (`embed.min_side`, BRISQUE's own limit)",
    FLAT_IMAGE: "BRISQUE: every pixel has the same grey level",
    NEAR_FLAT_IMAGE: "BRISQUE: under 5 % of the interior pixels lie in windows that are not flat",
    DEGENERATE_FEATURES: "BRISQUE: a feature is not finite",
    FLOAT_OUT_OF_RANGE: "BRISQUE of an array: a float image outside [0, 1] (scale ambiguous)",
    UNSUPPORTED_INPUT: "BRISQUE of an array: not an array, or a type or shape it cannot use",
    MISSING: "`samples.parquet`: the image has no row in that stage's table",
    NON_FINITE: "`samples.parquet`: status ok but the score is not finite",
    SINGLE_IMAGE_CLASS: "references: the only ok image of its class (no class-centre or SDD value)",
}
