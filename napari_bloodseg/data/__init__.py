"""Data the project makes (synthetic smears) and loaders for public datasets."""

from .public import fetch_zheng_wbc
from .synthetic import synthetic_rbc, synthetic_wbc

__all__ = ["fetch_zheng_wbc", "synthetic_rbc", "synthetic_wbc"]
