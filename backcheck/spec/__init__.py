"""The YAML config (contract section 1): read, validate, and point at the line of every mistake.

Errors read ``model.yaml:7:5: network.layers[1].activation: expected one of ...; got 'rleu'
(did you mean 'relu'?)``. One module per section of the file; ``reader`` alone imports ``yaml``.
"""

from backcheck.spec.calls import BUILTIN_NAMES, CHAIN_NAMES, Call, Sequence
from backcheck.spec.check import METHODS, CheckSpec, TrainSpec
from backcheck.spec.code import (LAYOUTS, ORIENTS, ROLES, TARGETS, ChainSpec, CodeSpec, LinesSpec, PlaceSpec,
                                 chain_is_step)
from backcheck.spec.config import Config, load_config, parse_config
from backcheck.spec.data import MAX_CSV_ROWS, DataSpec
from backcheck.spec.network import ACTIVATIONS, LOSSES, LayerSpec, NetworkSpec
from backcheck.spec.paths import WILDCARD, parse_expr, parse_path

__all__ = ["ACTIVATIONS", "BUILTIN_NAMES", "CHAIN_NAMES", "LAYOUTS", "LOSSES", "MAX_CSV_ROWS", "METHODS", "ORIENTS",
           "ROLES", "TARGETS", "WILDCARD", "Call", "ChainSpec", "CheckSpec", "CodeSpec", "Config", "DataSpec",
           "LayerSpec", "LinesSpec", "NetworkSpec", "PlaceSpec", "Sequence", "TrainSpec", "chain_is_step", "load_config", "parse_config",
           "parse_expr", "parse_path"]
