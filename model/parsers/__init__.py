"""Parsers from the published search-space encodings into the graph IR (one module per space)."""

from model.parsers.darts import parse_darts
from model.parsers.json_dag import parse_json_dag
from model.parsers.nb101 import parse_nb101
from model.parsers.nb201 import NB201_OPS, nb201_arch_str, parse_nb201

__all__ = ["NB201_OPS", "nb201_arch_str", "parse_darts", "parse_json_dag", "parse_nb101", "parse_nb201"]
