"""A dtype prints as its name (``print(t.dtype)`` -> ``Q4_K``); its number stays where numbers are asked for."""

import json

from aprqa.quant.dtypes import DType


def test_dtype_prints_as_its_name_and_keeps_its_number():
    d = DType.Q4_K
    assert str(d) == "Q4_K" and f"{d}" == "Q4_K" and f"{d:>6}" == "  Q4_K" and "%s" % d == "Q4_K"
    assert int(d) == 12 and f"{d:d}" == "12" and "%d" % d == "12" and json.dumps([d]) == "[12]"
