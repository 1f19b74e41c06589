import torch

from napari_bloodseg.schemas import IGNORE_INDEX
from napari_bloodseg.training.losses import ce_dice_loss


def test_loss_is_lower_for_the_right_answer():
    target = torch.randint(0, 3, (2, 8, 8))
    good = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 10
    bad = torch.roll(good, 1, dims=1)
    assert ce_dice_loss(good, target) < 0.05 < ce_dice_loss(bad, target)


def test_ignored_pixels_do_not_count():
    target = torch.zeros((1, 4, 4), dtype=torch.long)
    logits = torch.zeros((1, 2, 4, 4))
    logits[:, 0] = 5.0  # confidently background everywhere
    wrong_there = target.clone()
    wrong_there[0, :2] = 1  # the top half says "cell": the prediction is wrong there ...
    ignored = wrong_there.clone()
    ignored[0, :2] = IGNORE_INDEX  # ... unless those pixels are not annotated
    assert ce_dice_loss(logits, ignored) < ce_dice_loss(logits, wrong_there)
    assert torch.isclose(ce_dice_loss(logits, ignored), ce_dice_loss(logits[:, :, 2:], target[:, 2:]))


def test_all_ignored_gives_zero_loss_with_a_gradient():
    logits = torch.randn((1, 3, 4, 4), requires_grad=True)
    loss = ce_dice_loss(logits, torch.full((1, 4, 4), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
