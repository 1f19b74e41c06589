"""Files in the user model folder that are no usable model: what the Models widget names under "Not listed" and
offers to delete.

Two kinds: a card that is broken or has lost its weights (:func:`~napari_bloodseg.models.zoo.skipped_cards`), and
weights that have lost their card (:func:`~napari_bloodseg.models.zoo.all_cardless_weights`: an interrupted save, or a
copy by hand). Neither is listed as a model; weights without a card were not named at all, so they could only be
found and removed in a file manager (GUI audit L5). Both are deleted by name with
:func:`~napari_bloodseg.models.manage.delete_model`. Kept free of Qt so the rule reads, and is tested, on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..models.files import CARD_SUFFIX, WEIGHTS_SUFFIX


@dataclass(frozen=True)
class UnusableFile:
    """A file in the user model folder that is no usable model, and why."""

    #: what :func:`~napari_bloodseg.models.manage.delete_model` takes to delete it
    name: str
    path: Path
    reason: str
    #: False when ``name`` differs only in case from a usable model's: deleting by that name would find the model
    deletable: bool = True

    def note(self) -> str:
        return f"skipped {self.path}: {self.reason}"


def not_listed(listed: Iterable[str] = ()) -> tuple[list[str], list[UnusableFile]]:
    """(a note for every file in the model folders that is no usable model, the user folder's ones). ``listed``:
    the usable user models' names; a file whose name differs from one of them only in case is named but not
    offered for deletion (deleting by that name would find the model)."""
    from ..models import user_model_dir
    from ..models.zoo import all_cardless_weights, skipped_cards

    usable = {name.casefold() for name in listed}
    folder = user_model_dir().resolve()
    notes: list[str] = []
    out: list[UnusableFile] = []
    for card in skipped_cards():
        if card.path.parent.resolve() != folder:  # a shipped one: read-only, only named
            notes.append(card.note())
            continue
        name = card.path.name[: -len(CARD_SUFFIX)]
        out.append(UnusableFile(name, card.path, card.reason, name.casefold() not in usable))
    for weights in all_cardless_weights():
        name = weights.name[: -len(WEIGHTS_SUFFIX)]
        reason = (
            f"weights without their card ({name}{CARD_SUFFIX}; an interrupted save, or a copy by hand): put the card "
            "beside them or delete them"
        )
        out.append(UnusableFile(name, weights, reason, name.casefold() not in usable))
    return notes + [u.note() for u in out], out
