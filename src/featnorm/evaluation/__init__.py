"""Evaluation of quality proxies by recognition utility: genuine/impostor pairs and the
error-versus-discard characteristic (EDC). Never imports torch or the embedding stage."""
