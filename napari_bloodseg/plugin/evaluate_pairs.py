"""Which prediction layer is scored against which expert mask, and which pairs are left out and why.

Kept apart from the Evaluate widget (as ``finetune_pairs`` is from Fine-tune) so the rules a user meets before
any scoring read in one place: pairing by image file or name, one schema per evaluation, one table per model,
and one prediction per model and mask.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..schemas import LabelSchema, get_schema
from .layers import layer_schema, meta, pair_key, same_image, strip_tags

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Labels

Pair = tuple["Labels", "Labels"]


def layer_key(layer: Labels) -> str:
    """Pairing key: the source image of a prediction/mask when recorded, else the name without tags."""
    source = meta(layer).get("source")
    return pair_key(str(source)) if source else pair_key(layer.name)


def looks_like_prediction(layer: Labels) -> bool:
    role = meta(layer).get("role")
    if role:
        return role == "prediction"
    return strip_tags(layer.name) != layer.name and "mask" not in layer.name.lower()


def looks_like_mask(layer: Labels) -> bool:
    role = meta(layer).get("role")
    if role:
        return role == "mask"
    name = layer.name.lower()
    return any(tag in name for tag in ("mask", "truth", "gt", "expert", "label"))


def pair_layers(predictions: list[Labels], truths: list[Labels]) -> tuple[list[Pair], list[Labels]]:
    """(prediction, expert) pairs, and the predictions left without a mask.

    A mask made for the same image file pairs first; otherwise names pair, unless the two layers record
    different image files (``001`` from two folders: napari renames the second, the names still match)."""
    pairs, unmatched = [], []
    for p in predictions:
        others = [t for t in truths if t.name != p.name]
        t = next((t for t in others if same_image(p, t)), None)
        if t is None:
            key = layer_key(p)
            t = next((t for t in others if layer_key(t) == key and same_image(p, t) is not False), None)
        if t is None:
            unmatched.append(p)
        else:
            pairs.append((p, t))
    return pairs, unmatched


_TAG = re.compile(r"\[([^\[\]]+)\]")


def model_of(layer: Labels) -> str:
    """The model a prediction came from: Segment records it; else the last ``[tag]`` of the name that is not
    napari's ``[1]`` for a repeated name (``001 [segnet] [1]`` → ``segnet``); else "" (unknown)."""
    recorded = meta(layer).get("model")
    if recorded:
        return str(recorded)
    tags = [t.strip() for t in _TAG.findall(layer.name) if not t.strip().isdigit()]
    return tags[-1] if tags else ""


@dataclass
class ScoringPlan:
    """The pairs to score, one group per model (each gets its own mean ± SEM), and the pairs left out."""

    schema: LabelSchema | None = None
    groups: dict[str, list[Pair]] = field(default_factory=dict)  # model ("" when unknown) → pairs
    skipped: list[str] = field(default_factory=list)  # "prediction layer: why"


def plan_scoring(pairs: list[Pair]) -> ScoringPlan:
    """Group ``pairs`` by model and leave out what would bend the means, saying why.

    - a prediction whose schema is not its mask's (a WBC net against an RBC mask);
    - pairs of another schema than most pairs (one table has one set of classes; ties go to the first pair);
    - a second prediction of one mask by one model (a corrected layer and a re-run beside it): counted twice,
      that image would weigh double in the mean.
    """
    plan = ScoringPlan()
    consistent = []
    for p, t in pairs:
        truth_schema, pred_schema = layer_schema(t), meta(p).get("schema")
        if pred_schema and pred_schema != truth_schema.name:
            plan.skipped.append(f"{p.name}: prediction is {pred_schema} but its mask '{t.name}' is {truth_schema.name}")
        else:
            consistent.append((p, t, truth_schema.name))
    if not consistent:
        return plan
    counts = Counter(name for *_, name in consistent)
    order = list(dict.fromkeys(name for *_, name in consistent))
    schema = max(order, key=lambda name: counts[name])  # max keeps the first of equal counts
    plan.schema = get_schema(schema)
    scored: dict[tuple[str, str], str] = {}
    for p, t, name in consistent:
        if name != schema:
            plan.skipped.append(
                f"{p.name}: its mask '{t.name}' is {name}, most pairs are {schema}; evaluate the {name} pairs on "
                "their own"
            )
            continue
        model = model_of(p)
        first = scored.setdefault((model, t.name), p.name)
        if first != p.name:
            by = f" by {model}" if model else ""
            plan.skipped.append(f"{p.name}: '{t.name}' is already scored against {first}{by}; untick one of them")
            continue
        plan.groups.setdefault(model, []).append((p, t))
    return plan
