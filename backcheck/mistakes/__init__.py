"""Naming mistakes: the catalog of known backprop mistakes and the search that matches the code's
gradient against it."""

from backcheck.mistakes.catalog import CATALOG, Entry, mistake, parse_injections
from backcheck.mistakes.matching import Evidence, explain, explain_variants, ordered, param_pattern

__all__ = ["CATALOG", "Entry", "Evidence", "explain", "explain_variants", "mistake", "ordered", "param_pattern", "parse_injections"]
