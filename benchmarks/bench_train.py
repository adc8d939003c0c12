"""Training throughput on FEC triplets: images/s of the train step, and of loading cached crops.

    python benchmarks/bench_train.py                         # CPU, 112 px (the fec preset)
    python benchmarks/bench_train.py --device cuda --batch_size 256 --steps 50
    python benchmarks/bench_train.py --image_size 224        # FECNet's input size

An FEC epoch of 500k triplets is 1.5M images; the target is under 10 minutes on one H200-class GPU,
i.e. at least 2,500 images/s for the step and for the loader (summed over DataLoader workers).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fecsim.train.data import train_transform
from fecsim.train.fec.datasets import CropCache, TripletFaces
from fecsim.train.fec.download import SETTINGS, crop_path
from fecsim.train.fec.loss import triplet_and_pair_loss
from fecsim.train.fec.reader import FaceRef, Triplet
from fecsim.model import SiameseResNet18
from fecsim.train.loop import autocast, pick_device

EPOCH_TRIPLETS = 500_000
TARGET_SECONDS = 600


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_step(device, image_size: int, batch_size: int, steps: int, warmup: int,
               channels_last: bool) -> dict:
    """Forward + backward + AdamW step of the fec preset's loss on random images already on device."""
    torch.manual_seed(0)
    model = SiameseResNet18().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    shape = (batch_size, 3, image_size, image_size)
    batch = {k: torch.rand(shape, device=device) for k in ("anchor", "positive", "negative")}
    if channels_last:
        batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
    batch["margin"] = torch.full((batch_size,), 0.2, device=device)
    model.train()
    times = []
    for i in range(warmup + steps):
        sync(device)
        start = time.perf_counter()
        with autocast(device):
            loss, _ = triplet_and_pair_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    per_step = float(np.median(times))
    images_per_s = 3 * batch_size / per_step
    # Forward + backward of ResNet18 is about 3 x 1.82 GFLOPs at 224 px, scaling with pixels.
    gflops_per_image = 3 * 1.82 * (image_size / 224) ** 2
    return {"device": str(device), "image_size": image_size, "batch_triplets": batch_size,
            "sustained_tflops": round(images_per_s * gflops_per_image / 1000, 4),
            "target_tflops": round(3 * EPOCH_TRIPLETS / TARGET_SECONDS * gflops_per_image / 1000, 2),
            "steps": steps, "seconds_per_step": round(per_step, 4),
            "images_per_s": round(images_per_s, 1),
            "ms_per_image": round(1000 / images_per_s, 3),
            "epoch_500k_minutes": round(3 * EPOCH_TRIPLETS / images_per_s / 60, 1)}


def bench_loader(image_size: int, crop_size: int, items: int) -> dict:
    """One process decoding cached crops and augmenting them, as each DataLoader worker does."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / SETTINGS).write_text(json.dumps({"size": crop_size, "margin": 0.1, "square": True}))
        rng = np.random.default_rng(0)
        faces = [FaceRef(f"http://example.invalid/{i}.jpg", (0.1, 0.9, 0.1, 0.9)) for i in range(64)]
        for face in faces:
            path = crop_path(root, face)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Smooth noise compresses like a photo, unlike white noise.
            small = rng.integers(0, 256, (crop_size // 8, crop_size // 8, 3), dtype=np.uint8)
            Image.fromarray(small).resize((crop_size, crop_size), Image.BICUBIC).save(path, quality=95)
        cache = CropCache(root)
        triplets = [Triplet(tuple(faces[j] for j in rng.choice(64, 3, replace=False)),
                            "TWO_CLASS_TRIPLET", (("r", 1),), i) for i in range(items)]
        dataset = TripletFaces(triplets, cache, train_transform(image_size, grey=False))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in a DataLoader worker
        dataset[0]
        start = time.perf_counter()
        for i in range(items):
            dataset[i]
        seconds = time.perf_counter() - start
        torch.set_num_threads(threads)
    images_per_s = 3 * items / seconds
    return {"crop_size": crop_size, "image_size": image_size,
            "images_per_s_per_worker": round(images_per_s, 1),
            "workers_for_2500_per_s": int(np.ceil(2500 / images_per_s))}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--image_size", type=int, default=112)
    parser.add_argument("--crop_size", type=int, default=224, help="the download cache's size")
    parser.add_argument("--batch_size", type=int, default=None, help="triplets per step")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--loader_items", type=int, default=100, help="triplets decoded (0: skip)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--channels_last", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    batch = args.batch_size or (256 if device.type == "cuda" else 16)
    result = {"torch": torch.__version__, "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    result["step"] = bench_step(device, args.image_size, batch, args.steps, args.warmup,
                                args.channels_last)
    if args.loader_items:
        result["loader"] = bench_loader(args.image_size, args.crop_size, args.loader_items)
    step = result["step"]
    print(f"train step on {step['device']} at {step['image_size']} px, {step['batch_triplets']} "
          f"triplets/step: {step['images_per_s']} images/s ({step['ms_per_image']} ms/image); "
          f"an epoch of {EPOCH_TRIPLETS:,} triplets would take {step['epoch_500k_minutes']} min "
          f"(target {TARGET_SECONDS // 60} min = {3 * EPOCH_TRIPLETS / TARGET_SECONDS:.0f} images/s); "
          f"~{step['sustained_tflops']} TFLOP/s sustained, the target needs ~{step['target_tflops']}")
    if "loader" in result:
        lo = result["loader"]
        print(f"loader: {lo['images_per_s_per_worker']} images/s per worker (decode {lo['crop_size']} px "
              f"JPEG + augment to {lo['image_size']} px); {lo['workers_for_2500_per_s']} workers "
              f"reach 2,500 images/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
