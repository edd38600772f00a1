"""losslab: a laboratory for how neural networks are trained."""
__version__ = "0.1.0"
