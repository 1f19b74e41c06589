import json
import math

import pytest

from napari_bloodseg.io import strict_json


def _refuse(token: str) -> None:
    raise ValueError(f"non-standard JSON constant {token}")


def test_non_finite_floats_become_null_at_any_depth():
    value = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": (0.5, math.nan), "e": "NaN", "f": 2}
    text = strict_json.dumps(value)
    assert json.loads(text, parse_constant=_refuse) == {
        "a": None,
        "b": [1.0, None, {"c": None}],
        "d": [0.5, None],
        "e": "NaN",  # a string stays a string
        "f": 2,
    }


def test_plain_json_would_have_written_nan():
    """Why the module exists: the standard library writes a bare NaN that strict parsers refuse."""
    with pytest.raises(ValueError):
        json.loads(json.dumps({"sem": math.nan}), parse_constant=_refuse)
