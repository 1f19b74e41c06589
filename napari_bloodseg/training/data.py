"""Training data: load image/mask pairs into memory (uint8) and split them reproducibly by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import find_pairs, read_image, read_mask
from ..io.masks import predicted_by
from ..schemas import IGNORE_INDEX, LabelSchema, get_schema


@dataclass
class Sample:
    name: str
    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) uint8, IGNORE_INDEX where unlabelled
    #: the model whose prediction the mask file records being (``bloodseg predict`` marks its masks), or None
    predicted_by: str | None = None


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map (keeps values exact)."""
    h, w = labels.shape
    ys = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(int), h - 1)
    xs = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(int), w - 1)
    return labels[ys[:, None], xs[None, :]]


def rescale_sample(s: Sample, scale: float) -> Sample:
    if abs(scale - 1.0) < 1e-6:
        return s
    from ..inference.predict import resize_image  # torch: here, so that checking samples needs none

    h, w = s.labels.shape
    size = (max(round(h * scale), 8), max(round(w * scale), 8))
    return Sample(s.name, resize_image(s.image, size), resize_labels(s.labels, size), s.predicted_by)


def load_samples(folder: str | Path, schema: LabelSchema | str, scale: float = 1.0) -> list[Sample]:
    """All image+mask pairs of a folder (Dataset 1 layout or images/ + masks/); images without a mask are skipped."""
    sch = get_schema(schema)
    out = []
    other: list[str] = []  # masks of the other schema: read as this one, they teach (and score) the wrong classes
    for img_path, mask_path in find_pairs(folder):
        if mask_path is None:
            continue
        image = read_image(img_path, as_float=False)
        labels, own = read_mask(mask_path, shape=image.shape[:2])  # the mask's own schema, then the one asked for
        if own.name != sch.name:
            labels, _ = read_mask(mask_path, sch, shape=image.shape[:2])
            if own.name == "wbc" or _nucleus_only(labels):  # an empty (all-background) mask is either schema's
                other.append(mask_path.name)
        out.append(rescale_sample(Sample(img_path.stem, image, labels, predicted_by(mask_path)), scale))
    if not out:
        raise ValueError(f"{folder}: no image+mask pairs found")
    if other:  # one by one: a few RBC masks among WBC ones made every red cell a nucleus, without a word
        listed = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        what = WBC_MASKS_AS_RBC if sch.name == "rbc" else RBC_MASKS_AS_WBC
        mixed = "; take them out of the folder" if len(other) < len(out) else ""
        raise ValueError(f"{folder}: {len(other)} of {len(out)} masks ({listed}): {what}{mixed}")
    return out


def _nucleus_only(labels: np.ndarray) -> bool:
    """WBC labels with nucleus and no cytoplasm, fully labelled: a red-cell mask (0/255) read as WBC."""
    present = set(np.unique(labels).tolist())
    return 2 in present and 1 not in present and IGNORE_INDEX not in present


class TrainingDataWarning(UserWarning):
    """Something about the training data the user should know before the run's minutes are spent (the CLI prints
    it at once as ``bloodseg: warning: ...``)."""


def labelled(sample: Sample) -> bool:
    """Whether any pixel of the sample is labelled (not IGNORE_INDEX): a wholly unlabelled one teaches nothing
    and cannot be scored."""
    return bool((sample.labels != IGNORE_INDEX).any())


def listed(names: list[str], most: int = 5) -> str:
    """``a, b, c`` or ``a, b, c, d, e and 7 more``: names in a one-line message."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def predicted_masks_note(samples: list[Sample]) -> str | None:
    """A warning when masks record being predictions of this tool (``bloodseg predict`` marks them; napari's
    Export does not): trained on unedited, a network learns the model's own output, and a validation score
    measures agreement with that model."""
    marked = [f"{s.name} ({s.predicted_by})" for s in samples if s.predicted_by]
    if not marked:
        return None
    return (
        f"{len(marked)} of {len(samples)} masks record being predictions of bloodseg, not corrections: "
        f"{listed(marked)}; trained on as they are, a network learns the model's own output (correct them in "
        "napari and export them, or predict again if you did edit them elsewhere)"
    )


def shared_images(train: list[Sample], val: list[Sample]) -> list[tuple[str, str]]:
    """``(validation name, training name)`` for validation images whose pixels equal a training image's: a copy
    of the training folder as ``--val``, or one image twice (Dataset 1 holds 112 = 139) split apart. Validation
    on them measures what the network learnt, not how it does on new images."""
    import hashlib

    def digest(s: Sample) -> tuple[tuple[int, ...], str]:
        return s.image.shape, hashlib.blake2b(np.ascontiguousarray(s.image).tobytes(), digest_size=16).hexdigest()

    seen = {digest(s): s.name for s in train}
    return [(s.name, seen[d]) for s in val if (d := digest(s)) in seen]


def split_names(names: list[str], fractions: tuple[float, ...], seed: int = 0) -> list[list[str]]:
    """Shuffle ``names`` with ``seed`` and cut off one part per fraction; the rest comes last.

    Sorted first, so the split depends only on the names and the seed, not on file-system order.
    """
    order = sorted(names)
    rng = np.random.default_rng(seed)
    rng.shuffle(order)
    parts, start = [], 0
    for f in fractions:
        n = int(round(f * len(order)))
        parts.append(sorted(order[start : start + n]))
        start += n
    parts.append(sorted(order[start:]))
    return parts


def split_samples(
    samples: list[Sample], val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """(train, val, test) by name; the test part is never seen in training or checkpoint selection."""
    test_ids, val_ids, _ = split_names([s.name for s in samples], (test_fraction, val_fraction), seed)
    test_set, val_set = set(test_ids), set(val_ids)
    train = [s for s in samples if s.name not in test_set | val_set]
    return train, [s for s in samples if s.name in val_set], [s for s in samples if s.name in test_set]


def split_for_finetuning(
    samples: list[Sample], val_fraction: float, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """(train, val) for a fine-tune: validation drawn from the labelled images only; wholly unlabelled ones go to
    training, where ``finetune`` leaves them out and names them (split with the others, one took the only
    validation place, and the run had no validation at all)."""
    blank = [s for s in samples if not labelled(s)]
    train, val, _ = split_samples([s for s in samples if labelled(s)], val_fraction, 0.0, seed)
    return train + blank, val


def typical_cell_size(samples: list[Sample]) -> float:
    """Median equivalent diameter of the cells: a scale hint stored in the model card.

    Cells are the connected foreground components (a whole smear field holds a hundred red cells; a white-cell
    crop one cell), ignoring specks under a tenth of the image's largest component. A cell that touches unlabelled
    pixels (a partial correction) is only the part that was painted, and is left out: measured, a correction of the
    left third of each Dataset 2 crop read cells 3x too small, and fine-tuned at 3x the right scale. 0.0 when no
    whole cell is left.
    """
    from scipy import ndimage as ndi

    diam = []
    for s in samples:
        fg = (s.labels > 0) & (s.labels != IGNORE_INDEX)
        lab, n = ndi.label(fg)
        if n == 0:
            continue
        areas = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        keep = areas >= 0.1 * areas.max()
        unlabelled = s.labels == IGNORE_INDEX
        if unlabelled.any():
            cut = np.unique(lab[ndi.binary_dilation(unlabelled, np.ones((3, 3), bool))])
            keep[cut[cut > 0] - 1] = False
        diam.extend(2 * np.sqrt(areas[keep] / np.pi))
    return float(np.median(diam)) if diam else 0.0


#: what RBC masks (0/255, one class) read as WBC look like: nucleus everywhere a cell is, cytoplasm nowhere
RBC_MASKS_AS_WBC = (
    "the masks mark nucleus (grey 255) but no cytoplasm (grey 128) anywhere: these look like RBC masks "
    "(0/255, one class), which a WBC model would learn as 'every cell is a nucleus'"
)


WBC_MASKS_AS_RBC = (
    "the masks mark cytoplasm (grey 128) and nucleus (grey 255): these are WBC masks, which an RBC model would "
    "learn as one 'cell' class; use a WBC model"
)


def check_not_rbc_masks(samples: list[Sample], num_classes: int) -> None:
    """ValueError when WBC training labels hold nucleus and background only, in fully labelled masks."""
    if num_classes != 3 or not samples:
        return
    present = set().union(*(np.unique(s.labels).tolist() for s in samples)) - {IGNORE_INDEX}
    if present == {0, 2} and not any((s.labels == IGNORE_INDEX).any() for s in samples):
        raise ValueError(RBC_MASKS_AS_WBC)
