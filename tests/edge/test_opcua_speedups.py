"""The agent's faster variant-type lookup in asyncua's decoder gives what asyncua's own does."""

from __future__ import annotations

from typing import Any

from asyncua import ua
from asyncua.ua import uatypes

import edge_agent.drivers.opcua.driver  # noqa: F401  (installs the lookup)
from edge_agent.drivers.opcua.speedups import datatype_to_varianttype


def _outcome(f: Any, arg: Any) -> Any:
    try:
        return f(arg)
    except Exception as e:  # the same error, too
        return type(e), str(e)


def test_the_decoder_uses_the_table_lookup() -> None:
    assert ua.datatype_to_varianttype is datatype_to_varianttype


def test_every_variant_type_number_gives_what_asyncua_gives() -> None:
    # 0-63: what the 6 bits of a variant's encoding byte can say; then a NodeId and a bad type.
    for arg in [*range(64), ua.NodeId(11), ua.NodeId(40), "11"]:
        assert _outcome(datatype_to_varianttype, arg) == _outcome(
            uatypes.datatype_to_varianttype, arg), arg
