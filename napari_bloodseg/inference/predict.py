"""Inference: one :class:`Predictor` holds a model on its device and segments any number of images of any size."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..cancellation import Cancelled
from ..models import ModelCard, SegmentationNet
from ..schemas import LabelSchema
from .defaults import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, check_tiling
from .device import autocast_dtype, describe, resolve_device
from .edge_cells import DEFAULT_CELL_DIAMETER, check_min_fraction, drop_partial_edge_cells
from .optimize import fuse_for_inference
from .resample import ResizedRows, RowUpsampler, scaled_size
from .tiling import sliding_window, tile_spans

#: ``tta="auto"`` averages the 8 rotations/flips when the network input is at most this many pixels: single-cell
#: crops (Dataset 1: ~0.01 MP) gain ~0.005 cytoplasm Dice for milliseconds; big fields run once, at full speed
TTA_AUTO_MAX_PIXELS = 100_000
#: TTA views of one shape share a forward pass up to this many input values (N x 3 x H x W): all 8 views of any
#: crop that ``tta="auto"`` augments
TTA_BATCH_MAX_VALUES = 8 * 3 * TTA_AUTO_MAX_PIXELS


#: on a GPU out-of-memory the tile is halved while it stays at least this big; below, the run moves to the CPU
MIN_OOM_TILE = 128


@dataclass
class Prediction:
    labels: np.ndarray  # (H, W) uint8 label values
    probs: np.ndarray | None  # (C, H, W) float16 class probabilities, when asked for
    device: str
    seconds: float


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class Predictor:
    """Segment images with one model, loaded once.

    ``tile_size``/``overlap`` bound memory on big smears (0 disables tiling); ``tta`` averages the 8
    rotations/flips (8x the cost, slightly more accurate): True, False, or "auto" = only for inputs of at most
    :data:`TTA_AUTO_MAX_PIXELS` (single-cell crops) or the card's ``tta_max_pixels``; ``scale`` resizes the image
    before the network (e.g. 0.4 to bring Dataset 2's ~250 px cells to Dataset 1's ~100 px), and labels come
    back at the original size. On a GPU out-of-memory the tile is halved, then the run moves to the CPU.
    ``fuse`` runs an inference-only copy with BatchNorm folded into the convolutions and transposed
    convolutions rewritten as plain ones (same outputs to float rounding, see :mod:`.optimize`); ``compile``
    wraps it in ``torch.compile`` (minutes of compilation on a CPU: only for long runs on a GPU, off by default).
    ``edge_cells``: "auto" follows the card's ``edge_cell_min_fraction`` (the RBC masks leave out cells the edge
    cuts to a sliver, :mod:`.edge_cells`), "keep" keeps every cell, a number in (0, 1) sets the fraction.
    """

    def __init__(
        self,
        model: SegmentationNet,
        card: ModelCard | None = None,
        *,
        device: str | torch.device = "auto",
        tile_size: int = DEFAULT_TILE_SIZE,
        overlap: int = DEFAULT_OVERLAP,
        batch_size: int | None = None,
        amp: bool = True,
        tta: bool | str = "auto",
        log: Callable[[str], None] | None = None,
        fuse: bool = True,
        compile: bool = False,
        edge_cells: str | float = "auto",
    ) -> None:
        self.card = card
        if edge_cells not in ("auto", "keep"):
            edge_cells = check_min_fraction(edge_cells, "edge_cells ('auto', 'keep' or a number)")
        self.edge_cells = edge_cells
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        # the network that runs: a fused copy (the caller's model is untouched), optionally compiled
        self.fuse, self.compile = fuse, compile
        self._net = self._prepare_net()
        norm = (card.normalisation if card else None) or {"mean": [0.5] * 3, "std": [0.25] * 3}
        self.mean = torch.tensor(norm["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(norm["std"], dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std as one multiply-add per pixel (it was 4 passes over each tile), by input dtype
        self._norm = {u8: (1 / (255.0 if u8 else 1.0) / self.std, -self.mean / self.std) for u8 in (True, False)}
        # tiles per forward pass: a GPU wants several; on a CPU one 1024² tile already fills the cores and more
        # only spill the caches (16 MP, 2 threads: 5.5 s with 1 tile per pass, 7.0 s with 4)
        if batch_size is None:
            batch_size = 1 if self.device.type == "cpu" else 4
        check_tiling(tile_size, overlap, batch_size)
        self.tile_size, self.overlap, self.batch_size = int(tile_size), int(overlap), int(batch_size)
        self.amp = amp
        if tta not in (True, False, "auto"):
            raise ValueError(f"tta must be True, False or 'auto', not {tta!r}")
        self.tta = tta
        self.log = log or (lambda msg: None)
        #: view-by-view progress and Cancel for the ``_forward`` call under way (see ``_run``)
        self._on_views: Callable[[int, int], None] | None = None

    def _prepare_net(self) -> torch.nn.Module:
        net = fuse_for_inference(self.model, self.device)[0] if self.fuse else self.model
        return torch.compile(net, dynamic=False) if self.compile else net

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def device_name(self) -> str:
        return describe(self.device)

    @property
    def input_scale(self) -> float:
        return float(self.card.input_scale) if self.card and self.card.input_scale else 1.0

    def scale_for_cell_size(self, cell_size_px: float | None) -> float:
        """User scale that maps their cell diameter (px) to the one in the model's training data: 1 when the
        ratio lies within the scale jitter the model was trained with (its card's ``scale_range``), since those
        cells are already the sizes it learnt, and resampling costs detail (``wbc-unet`` on the Dataset 1 test
        crops: cytoplasm Dice 0.9441 at 1, 0.9425 at 0.97, 0.9434 at 1.03)."""
        trained = self.card.cell_size_px if self.card else None
        if not cell_size_px or not trained:
            return 1.0
        scale = float(trained) / float(cell_size_px)
        lo, hi = self.trained_scale_range
        return 1.0 if lo <= scale <= hi else scale

    @property
    def trained_scale_range(self) -> tuple[float, float]:
        """The scale jitter of the model's training (1, 1 when its card does not say)."""
        settings = (self.card.training or {}).get("settings") or {} if self.card else {}
        lo, hi = settings.get("scale_range") or (1.0, 1.0)
        return float(lo), float(hi)

    @property
    def edge_cell_min_fraction(self) -> float | None:
        """The fraction of a typical cell below which cells cut by the image edge are dropped (None: kept)."""
        if self.edge_cells == "keep":
            return None
        if self.edge_cells == "auto":
            return self.card.edge_cell_min_fraction if self.card else None
        return float(self.edge_cells)

    @property
    def tta_max_pixels(self) -> int:
        """Network-input size up to which ``tta="auto"`` augments: the card's own limit, else single-cell crops."""
        own = self.card.tta_max_pixels if self.card else None
        return int(own) if own else TTA_AUTO_MAX_PIXELS

    def uses_tta(self, height: int, width: int) -> bool:
        """Whether an image of this size (at the network's input scale) gets test-time augmentation."""
        return self.tta is True or (self.tta == "auto" and height * width <= self.tta_max_pixels)

    def _forward(self, tiles: np.ndarray, tta: bool = False) -> torch.Tensor:
        """(N, h, w, 3) uint8/float tiles → (N, C, h, w) float32 probabilities, left on the model's device (tiles
        blend there; only labels, or probabilities when asked for, come back to the host).

        ``self._on_views(done, 8)``, set by ``_run`` for the call, follows the test-time augmentation's views: a
        whole smear field is one tile of 8 views (seconds on a CPU), so progress and Cancel act between views."""
        on_views = self._on_views
        x = torch.from_numpy(np.ascontiguousarray(tiles))
        # NHWC memory (channels-last) throughout: the permuted view already is, and oneDNN ran this project's
        # networks ~1.3-2x faster from a channels-last input than from a contiguous NCHW one (2-core CPU)
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        scale, shift = self._norm[tiles.dtype == np.uint8]
        x = torch.addcmul(shift.to(x.device), x, scale.to(x.device))  # not in place: x may share the caller's array
        dtype = autocast_dtype(self.device) if self.amp else None
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            if not tta:
                return torch.softmax(self._net(x).float(), dim=1)
            # test-time augmentation: mean of the 8 rotations/flips (cells have no orientation), 8x the cost; views
            # of one shape go through the network together when small (a 120 px crop: 37 ms instead of 59 ms)
            views = [torch.rot90(x.flip(-1) if k >= 4 else x, k % 4, (-2, -1)) for k in range(8)]
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for k, v in enumerate(views):
                by_shape.setdefault(tuple(v.shape), []).append(k)
            probs = torch.zeros((x.shape[0], self.num_classes, *x.shape[-2:]), device=x.device)
            done = 0
            for shape, ks in by_shape.items():
                together = len(ks) if math.prod(shape) * len(ks) <= TTA_BATCH_MAX_VALUES else 1
                for i in range(0, len(ks), together):
                    group = ks[i : i + together]
                    batch = torch.cat([views[k] for k in group]).contiguous(memory_format=torch.channels_last)
                    out = torch.softmax(self._net(batch).float(), dim=1)
                    for k, y in zip(group, out.split(x.shape[0]), strict=True):
                        y = torch.rot90(y, -(k % 4), (-2, -1))
                        probs += y.flip(-1) if k >= 4 else y
                    if on_views is not None:
                        done += len(group)
                        on_views(done, len(views))
            return probs / 8

    def _run(
        self, image, want_probs: bool, progress, cancel, out=None, size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Tiled inference over ``image``; labels (and probabilities) at ``size`` (default: the image's own),
        upsampled band by band as rows finish when the image is a resized view."""
        h, w = image.shape[:2]
        tta = self.uses_tta(h, w)
        full = size or (h, w)
        labels = np.empty(full, np.uint8) if out is None else out
        probs = np.empty((self.num_classes, *full), np.float16) if want_probs else None
        upsampler = RowUpsampler((h, w), full, labels, probs) if full != (h, w) else None

        def on_rows(y0: int, y1: int, p: torch.Tensor) -> None:
            if upsampler is not None:
                upsampler.feed(y0, y1, p)
                return
            labels[y0:y1] = p.max(dim=0).indices.to(torch.uint8).cpu().numpy()  # ~10x faster than argmax
            if probs is not None:
                probs[:, y0:y1] = p.cpu().numpy()

        def stop_if_cancelled() -> None:
            if cancel is not None and cancel():
                raise Cancelled("segmentation cancelled")

        tile = self.tile_size if self.tile_size > 0 else max(h, w)
        overlap, align = min(self.overlap, tile // 2), self.model.stride
        total = len(tile_spans(h, tile, overlap, align)) * len(tile_spans(w, tile, overlap, align))
        tiles_done = 0

        def tile_progress(done: int, of: int) -> None:
            nonlocal tiles_done
            tiles_done = done
            if progress is not None:
                progress(done, of)

        def run_batch(tiles: np.ndarray) -> torch.Tensor:
            stop_if_cancelled()
            if not tta:
                return self._forward(tiles)

            def on_views(done: int, views: int) -> None:  # a share of this batch's tiles, view by view
                if done == views:  # the batch is done: the tiles' own progress and the next batch's check follow
                    return
                stop_if_cancelled()
                if progress is not None:
                    progress(tiles_done + len(tiles) * done / views, total)

            self._on_views = on_views  # one image at a time: a Predictor's predict is not re-entrant
            try:
                return self._forward(tiles, True)
            finally:
                self._on_views = None

        sliding_window(
            image,
            run_batch,
            self.num_classes,
            tile=tile,
            overlap=overlap,
            batch_size=self.batch_size,
            on_rows=on_rows,
            progress=tile_progress,
            align=align,
        )
        return labels, probs

    def _run_with_fallback(self, image, want_probs, progress, cancel, out=None, size=None):
        while True:
            try:
                return self._run(image, want_probs, progress, cancel, out, size)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
                if self.device.type == "cpu" or not _is_oom(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if self.tile_size >= 2 * MIN_OOM_TILE or self.tile_size <= 0:
                    new = 256 if self.tile_size <= 0 else self.tile_size // 2
                    self.log(
                        f"{self.device} out of memory at tile {self.tile_size or 'full'}: retrying with tile {new}"
                    )
                    self.tile_size, self.batch_size = new, 1
                else:
                    self.log(f"{self.device} out of memory even at tile {self.tile_size}: moving to the CPU")
                    self.device = torch.device("cpu")
                    self.model = self.model.to(self.device)
                    self._net = self._prepare_net()

    def predict(
        self,
        image: np.ndarray,
        *,
        scale: float = 1.0,
        return_probs: bool = False,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        out=None,
    ) -> Prediction:
        """Segment one (H, W, 3) image (uint8, or float in [0, 1]).

        ``scale`` says how to resize this image to look like the model's training data at native resolution
        (1.0: same magnification); the model card's ``input_scale`` is applied on top.

        ``image`` may be any array-like that slices to numpy (a numpy memmap, a zarr or dask array, see
        :func:`napari_bloodseg.io.lazy.open_lazy`): it is read one band of tile rows at a time. ``out``, an (H, W)
        array-like that takes slice assignment (numpy memmap, zarr array), receives the uint8 labels band by band
        and is returned as ``labels``; with both, an image bigger than memory streams from disk to disk, at any
        scale (resizing happens band by band, :mod:`.resample`).
        """
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
        if out is not None and tuple(out.shape) != tuple(image.shape[:2]):
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(image.shape[:2])}")
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        if not 0 < scale < float("inf"):  # NaN too
            raise ValueError(f"scale must be a positive number, not {scale}")
        scale = scale * self.input_scale
        if abs(scale - 1.0) > 1e-3:  # resized band by band on the way in and out: memory stays bounded
            small = ResizedRows(image, scaled_size(h, w, scale))
            labels, probs = self._run_with_fallback(small, return_probs, progress, cancel, out, (h, w))
        else:
            labels, probs = self._run_with_fallback(image, return_probs, progress, cancel, out)
        fraction = self.edge_cell_min_fraction
        if fraction:
            trained = self.card.cell_size_px if self.card and self.card.cell_size_px else None
            # the typical cell diameter in this image: the training data's, seen through the user's scale
            drop_partial_edge_cells(labels, (trained or DEFAULT_CELL_DIAMETER) / scale * self.input_scale, fraction)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return Prediction(labels, probs, self.device_name, time.perf_counter() - t0)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) image to ``size`` = (h, w) with antialiasing; keeps uint8 as uint8."""
    arr = np.ascontiguousarray(image)
    if not arr.flags.writeable:  # PIL-read images are read-only views: torch would print a warning to the user
        arr = arr.copy()
    x = torch.from_numpy(arr).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)[0].permute(1, 2, 0)
    if image.dtype == np.uint8:
        return y.round().clamp(0, 255).to(torch.uint8).numpy()
    return y.numpy().astype(image.dtype)


def segment(
    model: SegmentationNet,
    image: np.ndarray,
    card: ModelCard | None = None,
    **kwargs,
) -> Prediction:
    """One-shot convenience over :class:`Predictor` (batch callers should keep one Predictor)."""
    predict_keys = {"scale", "return_probs", "progress", "cancel"}
    p_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in predict_keys}
    return Predictor(model, card, **kwargs).predict(image, **p_kwargs)


def schema_of(card: ModelCard | None, default: LabelSchema) -> LabelSchema:
    return card.label_schema if card else default
