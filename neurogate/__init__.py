"""NeuroGate: a consent and neural-data governance gateway for EEG/BCI streams."""

__version__ = "0.1.0"

__all__ = ["__version__"]
