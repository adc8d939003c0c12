"""Batch augmentation on the training device: each image its own draw, the PIL pipeline's steps."""
import pytest
import torch
from PIL import Image

from fecsim.train.augment import augment_batch
from fecsim.train.data import folder_tensor

OFF = dict(scale=(1, 1), ratio=(1, 1), flip_p=0.0, degrees=0.0, translate=0.0, brightness=0.0,
           contrast=0.0, erase_p=0.0)


def faces(n=8, size=48):
    torch.manual_seed(0)
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8)


def test_everything_off_returns_the_images():
    images = faces()
    out = augment_batch(images, 48, **OFF)
    assert out.shape == (8, 3, 48, 48) and out.dtype == torch.float32
    assert torch.allclose(out[:, :1], images.float() / 255, atol=1e-5)
    assert torch.equal(out[:, 0], out[:, 2])               # grey in, three equal channels out


def test_mirror():
    images = faces()
    out = augment_batch(images, 48, **dict(OFF, flip_p=1.0))
    assert torch.allclose(out[:, :1], images.float().flip(-1) / 255, atol=1e-5)


def test_each_image_gets_its_own_draw_and_a_generator_repeats_it():
    images = faces(1).expand(16, -1, -1, -1)
    out = augment_batch(images, 64, generator=torch.Generator().manual_seed(1))
    assert out.shape == (16, 3, 64, 64) and 0 <= out.min() and out.max() <= 1
    assert len({round(float(o.sum()), 3) for o in out}) == 16
    again = augment_batch(images, 64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_erasing_blacks_out_a_rectangle_of_the_given_share():
    white = torch.full((32, 1, 64, 64), 255, dtype=torch.uint8)
    out = augment_batch(white, 64, **dict(OFF, erase_p=1.0, erase_scale=(0.05, 0.1)))
    black = (out[:, 0] == 0).float()
    shares = black.mean(dim=(1, 2))
    assert ((shares > 0.03) & (shares < 0.13)).all(), shares
    rows, cols = black.amax(2).sum(1), black.amax(1).sum(1)   # a rectangle fills its bounding box
    assert torch.allclose(black.sum(dim=(1, 2)), rows * cols)


def test_framing_zooms_in_and_rotation_leaves_black_corners():
    white = torch.full((64, 1, 48, 48), 255, dtype=torch.uint8)
    turned = augment_batch(white, 48, **dict(OFF, degrees=12.0))
    corners = turned[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners < 0.5).any(dim=1).float().mean() > 0.8    # almost every turn shows a corner
    ramp = torch.arange(48, dtype=torch.uint8).mul(5).expand(4, 1, 48, 48).contiguous()
    zoomed = augment_batch(ramp, 48, **dict(OFF, scale=(0.5, 0.5)))
    span = zoomed[:, 0, 0].amax(1) - zoomed[:, 0, 0].amin(1)
    assert (span < 0.8 * 235 / 255).all()                      # a crop sees part of the ramp


def test_folder_tensor_keeps_a_shared_size_and_resizes_mixed_ones(tmp_path):
    for c, sizes in (("a", (48, 48)), ("b", (48, 48))):
        (tmp_path / "same" / c).mkdir(parents=True)
        for i, s in enumerate(sizes):
            Image.new("RGB", (s, s), (200, 10, 10)).save(tmp_path / "same" / c / f"{i}.png")
    images, labels, classes = folder_tensor(tmp_path / "same", 64)
    assert images.shape == (4, 1, 48, 48) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 0, 1, 1] and classes == ["a", "b"]
    (tmp_path / "mixed" / "a").mkdir(parents=True)
    for i, s in enumerate((30, 90)):
        Image.new("RGB", (s, s), (0, 0, 250)).save(tmp_path / "mixed" / "a" / f"{i}.png")
    colour, _, _ = folder_tensor(tmp_path / "mixed", 64, grey=False)
    assert colour.shape == (2, 3, 64, 64) and int(colour[0, 2, 5, 5]) == 250


def test_unknown_setting_is_refused():
    with pytest.raises(TypeError, match="degree"):
        augment_batch(faces(), 48, degree=3)
