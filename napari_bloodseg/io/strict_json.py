"""JSON that strict parsers accept (JavaScript's ``JSON.parse``, ``jq``, most non-Python tools).

Python's ``json`` writes a float that is not a number as ``NaN``, which those parsers refuse; reports and model
cards hold such values (the SEM of a single image, a score with nothing to score), so they are written as null.
"""

from __future__ import annotations

import json
import math
from typing import Any


def strict(value: Any) -> Any:
    """``value`` with every non-finite float (in nested dicts, lists and tuples) replaced by None."""
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict` ``(value)``; raises rather than ever writing ``NaN``."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)
