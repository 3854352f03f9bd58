"""featnorm: is the face-embedding feature norm image quality, or class familiarity?"""

__version__ = "0.1.0"
__all__ = ["__version__"]
