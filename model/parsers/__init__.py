"""Parsers from the published search-space encodings into the graph IR (one module per space)."""

from model.parsers.darts import parse_darts
from model.parsers.fbnet import FBNET_CHOICES, fbnet_spec, parse_fbnet
from model.parsers.json_dag import parse_json_dag
from model.parsers.nb101 import parse_nb101
from model.parsers.nb201 import NB201_OPS, nb201_arch_str, nb201_representative, nb201_twin, parse_nb201, parse_nb201_network
from model.parsers.ofa import ofa_spec, parse_ofa

__all__ = [
    "FBNET_CHOICES",
    "NB201_OPS",
    "fbnet_spec",
    "nb201_arch_str",
    "nb201_representative",
    "nb201_twin",
    "ofa_spec",
    "parse_darts",
    "parse_fbnet",
    "parse_json_dag",
    "parse_nb101",
    "parse_nb201",
    "parse_nb201_network",
    "parse_ofa",
]
