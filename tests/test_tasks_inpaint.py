import pytest
import torch

from endopat.tasks.inpaint import InpaintSettings, hide_patches


@pytest.mark.parametrize("ratio, patch, hidden_patches", [(0.6, 8, 10), (0.25, 4, 16), (0.75, 16, 3)])
def test_hidden_patches_are_whole_squares_in_the_asked_share(ratio, patch, hidden_patches):
    torch.manual_seed(0)
    mask = hide_patches(torch.zeros(3, 2, 32, 32), ratio, patch)
    assert mask.shape == (3, 1, 32, 32)
    cells = mask.view(3, 32 // patch, patch, 32 // patch, patch)
    assert torch.equal(cells.amin(dim=(2, 4)), cells.amax(dim=(2, 4)))  # each square all hidden or all shown
    assert all(int(c.amax(dim=(1, 3)).sum()) == hidden_patches for c in cells)


def test_each_image_gets_its_own_patches():
    torch.manual_seed(0)
    mask = hide_patches(torch.zeros(4, 1, 64, 64), 0.5, 8)
    assert len({tuple(m.flatten().tolist()) for m in mask}) == 4


def test_a_patch_that_is_not_a_power_of_two_is_refused():
    with pytest.raises(ValueError, match="power of two"):
        InpaintSettings(patch=12)
