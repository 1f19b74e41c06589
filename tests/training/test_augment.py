import numpy as np
import torch

from napari_bloodseg.schemas import IGNORE_INDEX
from napari_bloodseg.training.augment import colour_jitter, dihedral, random_crop_pad, random_warp, scale_jitter


def test_dihedral_gives_eight_distinct_invertible_transforms():
    x = torch.arange(12.0).view(3, 4)
    outs = {tuple(dihedral(x, k).flatten().tolist()) + tuple(dihedral(x, k).shape) for k in range(8)}
    assert len(outs) == 8
    for k in range(8):  # the same transform on image and labels keeps them aligned
        img, lab = torch.stack([x, x * 2]), x
        assert torch.equal(dihedral(img, k)[1], dihedral(lab, k) * 2)


def test_crop_pad_pads_labels_with_ignore_and_keeps_pixels_aligned():
    rng = np.random.default_rng(0)
    img = torch.rand(3, 20, 30)
    lab = torch.randint(0, 3, (20, 30), dtype=torch.uint8)
    out_img, out_lab = random_crop_pad(img, lab, 32, rng)
    assert out_img.shape == (3, 32, 32) and out_lab.shape == (32, 32)
    assert (out_lab == IGNORE_INDEX).sum() > 0  # 12 rows and 2 columns were padded
    valid = out_lab != IGNORE_INDEX
    assert valid.sum() == 20 * 30


def test_crop_pad_keeps_every_label_on_its_pixel():
    # the image *is* the labels (channel 0 = label value): after padding or cropping, each labelled pixel still
    # sits under its own label, whatever offsets the generator picks
    rng = np.random.default_rng(0)
    for shape, size in [((20, 30), 32), ((50, 41), 32), ((20, 60), 32)]:
        for _ in range(5):
            lab = torch.randint(0, 3, shape, dtype=torch.uint8)
            img = torch.stack([lab.float(), torch.rand(shape), torch.rand(shape)])
            out_img, out_lab = random_crop_pad(img, lab, size, rng)
            valid = out_lab != IGNORE_INDEX
            assert valid.any()
            assert torch.equal(out_img[0][valid], out_lab[valid].float())


def test_scale_jitter_resizes_image_and_labels_together():
    rng = np.random.default_rng(3)
    img, lab = torch.rand(3, 40, 40), torch.randint(0, 3, (40, 40), dtype=torch.uint8)
    out_img, out_lab = scale_jitter(img, lab, 1.5, 1.5, rng)
    assert out_img.shape[1:] == out_lab.shape == (60, 60)
    assert set(out_lab.unique().tolist()) <= {0, 1, 2}  # nearest: no blended label values


def test_colour_jitter_changes_colours_but_stays_in_range():
    rng = np.random.default_rng(1)
    x = torch.rand(4, 3, 16, 16)
    y = colour_jitter(x, 1.0, rng)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert (y - x).abs().mean() > 0.01
    assert torch.equal(colour_jitter(x, 0.0, rng), x)


def test_random_warp_moves_image_and_labels_together():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    labels = torch.from_numpy(((yy - 20) ** 2 + (xx - 40) ** 2 < 200).astype(np.int64) * 2)[None].repeat(4, 1, 1)
    labels[:, 50:, :10] = 1
    image = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()  # the image *is* the labels
    warped, wlab = random_warp(image, labels, 1.0, rng)
    inside = wlab != IGNORE_INDEX
    assert (warped.argmax(1)[inside] == wlab[inside]).float().mean() > 0.99  # nearest vs bilinear at edges only
    assert not torch.equal(wlab, labels) and (~inside).any()  # it moved, and what came from outside is ignored
    assert set(wlab.unique().tolist()) <= {0, 1, 2, IGNORE_INDEX}
    same_image, same_labels = random_warp(image, labels, 0.0, rng)
    assert same_image is image and same_labels is labels  # strength 0: off
    again = random_warp(image, labels, 1.0, np.random.default_rng(0))
    assert torch.equal(again[1], wlab)  # seeded
