"""Analysis of the merged per-image table: merge, within-class standardisation, correlations
with cluster-bootstrap intervals, paired contrasts. Never imports torch or the embedding stage."""
