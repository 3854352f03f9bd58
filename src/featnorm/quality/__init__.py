"""Image-quality references: BRISQUE (LIVE release)."""
