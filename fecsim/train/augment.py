"""Augmentation of a whole batch on the training device, each image with its own random draw.

The same steps and ranges (data.AUGMENTATION) as data.train_transform: framing jitter, mirror,
rotation and shift, brightness and contrast, erasing; done as one affine resampling (bilinear, where
torchvision's RandomAffine samples the nearest pixel) and a few tensor ops per batch.
In PIL they cost about 1.4 ms per image on a CPU core, which held an H200 to 4,000-5,500 images/s;
here a batch travels to the GPU as its decoded bytes and is augmented there (on a CPU about 0.1 ms
per image).
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data import AUGMENTATION


def _uniform(n, low, high, generator, device):
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def _log_uniform(n, bounds, generator, device):
    """Aspect ratios, drawn uniformly in log space as torchvision does."""
    return torch.exp(_uniform(n, math.log(bounds[0]), math.log(bounds[1]), generator, device))


# Toward photos that are not FER2013 crops (webcams, phones, studio sets): what differs is
# resolution, exposure, focus, compression and sensor noise. Each step with its own probability.
DOMAIN_AUGMENTATION = dict(lowres_p=0.4, lowres_scale=(0.35, 1.0), gamma_p=0.4, gamma=(0.5, 2.0),
                           blur_p=0.25, blur_sigma=(0.3, 1.0), jpeg_p=0.3, jpeg_quality=(25, 90),
                           noise_p=0.25, noise_std=(0.005, 0.03))


def degrade_batch(images: torch.Tensor, generator: torch.Generator | None = None,
                  **ranges) -> torch.Tensor:
    """[0, 1] float images N x C x H x W, each degraded as a photo from another source might be:
    seen at a lower resolution (down-sampled to lowres_scale of its side, then up again), another
    exposure (gamma), out of focus (Gaussian blur), JPEG-compressed, with sensor noise."""
    unknown = set(ranges) - set(DOMAIN_AUGMENTATION)
    if unknown:
        raise TypeError(f"unknown domain augmentation settings {sorted(unknown)}")
    r = {**DOMAIN_AUGMENTATION, **ranges}
    n, c, size, device = len(images), images.shape[1], images.shape[-1], images.device
    g = dict(generator=generator, device=device)
    out = images
    chosen = lambda p: (torch.rand(n, **g) < p).view(n, 1, 1, 1)  # noqa: E731

    # One resolution per batch keeps it one resize; which images take it is drawn per image.
    side = max(4, round(size * float(_uniform(1, *r["lowres_scale"], **g))))
    small = F.interpolate(out, size=side, mode="area")
    out = torch.where(chosen(r["lowres_p"]),
                      F.interpolate(small, size=size, mode="bilinear", align_corners=False), out)
    gamma = torch.exp(_uniform(n, math.log(r["gamma"][0]), math.log(r["gamma"][1]), **g))
    out = torch.where(chosen(r["gamma_p"]), out.clamp(min=1e-4) ** gamma.view(n, 1, 1, 1), out)

    # Gaussian blur, a sigma per image: separable kernels as a grouped convolution.
    sigma = _uniform(n, *r["blur_sigma"], **g)
    half = math.ceil(3 * r["blur_sigma"][1])
    x = torch.arange(-half, half + 1, device=device, dtype=out.dtype)
    kernel = torch.exp(-x.view(1, -1) ** 2 / (2 * sigma.view(-1, 1) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)   # (n*c) x k
    flat = out.reshape(1, n * c, size, size)
    flat = F.conv2d(F.pad(flat, (half, half, 0, 0), mode="replicate"),
                    kernel.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, half, half), mode="replicate"),
                    kernel.view(n * c, 1, -1, 1), groups=n * c)
    out = torch.where(chosen(r["blur_p"]), flat.view(n, c, size, size), out)

    noise = torch.randn(out.shape, **g) * _uniform(n, *r["noise_std"], **g).view(n, 1, 1, 1)
    out = torch.where(chosen(r["noise_p"]), out + noise, out).clamp(0, 1)

    # JPEG on the CPU, image by image (PIL's codec), at a quality drawn per image.
    jpeg = torch.flatten(chosen(r["jpeg_p"])).tolist()
    quality = _uniform(n, *r["jpeg_quality"], **g).round().int().tolist()
    if any(jpeg):
        out = out.clone()
        pixels = (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for k in (k for k in range(n) if jpeg[k]):
            buffer = io.BytesIO()
            Image.fromarray(pixels[k].squeeze(-1) if c == 1 else pixels[k]).save(
                buffer, "JPEG", quality=quality[k])
            decoded = torch.from_numpy(np.array(Image.open(buffer))).reshape(size, size, c)
            out[k] = decoded.permute(2, 0, 1).to(device, out.dtype) / 255
    return out


def augment_batch(images: torch.Tensor, size: int, generator: torch.Generator | None = None,
                  domain: bool = False, **ranges) -> torch.Tensor:
    """uint8 or [0, 1] float images N x C x H x W -> augmented float images N x 3 x size x size
    (grey images, C = 1, come out as three equal channels, as the model takes them).

    ranges override data.AUGMENTATION. domain: also degrade_batch after the colour steps. Framing: a crop of `scale` of the area with aspect `ratio`
    (RandomResizedCrop), mirrored with probability flip_p, then rotated by up to `degrees` and
    shifted by up to `translate` of the side (RandomAffine, black outside). Colour: brightness and
    contrast factors in 1 +- the given amount (ColorJitter). Erasing: with probability erase_p a
    black rectangle of erase_scale of the area, aspect erase_ratio (RandomErasing).
    """
    unknown = set(ranges) - set(AUGMENTATION)
    if unknown:
        raise TypeError(f"unknown augmentation settings {sorted(unknown)}")
    r = {**AUGMENTATION, **ranges}
    if images.dtype == torch.uint8:
        images = images.float() / 255
    n, device = len(images), images.device
    g = dict(generator=generator, device=device)

    # One affine map per image from output coordinates to input coordinates ([-1, 1] both ways).
    area = _uniform(n, *r["scale"], **g)
    aspect = _log_uniform(n, r["ratio"], **g)
    crop_w, crop_h = (area * aspect).sqrt().clamp(max=1), (area / aspect).sqrt().clamp(max=1)
    centre_x = _uniform(n, -1, 1, **g) * (1 - crop_w)
    centre_y = _uniform(n, -1, 1, **g) * (1 - crop_h)
    mirror = torch.where(torch.rand(n, **g) < r["flip_p"], -1.0, 1.0)
    angle = torch.deg2rad(_uniform(n, -r["degrees"], r["degrees"], **g))
    # translate is a share of the side; the side spans 2 in these coordinates.
    shift_x, shift_y = (_uniform(n, -2 * r["translate"], 2 * r["translate"], **g) for _ in range(2))
    # The output is the crop rotated and shifted: undo the shift and rotation, then map into the crop.
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([
        torch.stack([crop_w * mirror * cos, crop_w * mirror * sin,
                     crop_w * mirror * (-cos * shift_x - sin * shift_y) + centre_x], -1),
        torch.stack([-crop_h * sin, crop_h * cos,
                     crop_h * (sin * shift_x - cos * shift_y) + centre_y], -1)], 1)
    grid = F.affine_grid(theta, [n, images.shape[1], size, size], align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    b = _uniform(n, 1 - r["brightness"], 1 + r["brightness"], **g).view(n, 1, 1, 1)
    c = _uniform(n, 1 - r["contrast"], 1 + r["contrast"], **g).view(n, 1, 1, 1)
    out = (out * b).clamp(0, 1)
    grey_mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - grey_mean) * c + grey_mean).clamp(0, 1)

    if domain:
        out = degrade_batch(out, generator)

    erase = torch.rand(n, **g) < r["erase_p"]
    erase_area = _uniform(n, *r["erase_scale"], **g)
    erase_aspect = _log_uniform(n, r["erase_ratio"], **g)
    eh = (erase_area * erase_aspect).sqrt().clamp(max=1) * size
    ew = (erase_area / erase_aspect).sqrt().clamp(max=1) * size
    top, left = torch.rand(n, **g) * (size - eh), torch.rand(n, **g) * (size - ew)
    pos = torch.arange(size, device=device, dtype=out.dtype) + 0.5
    rows = (pos.view(1, -1) >= top.view(-1, 1)) & (pos.view(1, -1) < (top + eh).view(-1, 1))
    cols = (pos.view(1, -1) >= left.view(-1, 1)) & (pos.view(1, -1) < (left + ew).view(-1, 1))
    hole = rows.view(n, 1, size, 1) & cols.view(n, 1, 1, size) & erase.view(n, 1, 1, 1)
    return out.masked_fill(hole, 0.0).expand(-1, 3, -1, -1)
