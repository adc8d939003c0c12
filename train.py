"""Train a fecsim model. Settings are the plain values below; override any as --name=value.

    python train.py                                  # the base model, from FER2013 folders, into
                                                     # runs/fer2013/fecsim.safetensors
    python train.py --epochs=1 --out_dir=runs/quick  # a short run (runs/quick/fecsim.safetensors)
    python train.py --preset=thesis                  # the 2023 thesis configuration (needs a network)
    python train.py --extra_pairs=flags.csv          # mix in labelled pairs (e.g. exported app flags)
    python train.py --init_from=checkpoints/fecsim-fer2013.safetensors --extra_pairs=flags.csv \
        --epochs=5 --lr=3e-4 --out_dir=runs/flags    # fine-tune the shipped model on them
    python train.py --init_from=A.safetensors,B.safetensors --epochs=0 \
        --out_dir=runs/soup                          # average fine-tunes of one model (a model soup)
    python train.py --init_from=A.safetensors --teacher=A.safetensors --epochs=8 --lr=1e-3 \
        --out_dir=runs/kd                            # fine-tune A towards its own answers (distillation)
    python train.py --preset=fec                     # FEC triplets (python -m fecsim.fec download first)
    python train.py --preset=thesis --fec_train=CSV --fec_images=DIR   # the thesis's FEC pairs
    torchrun --nproc_per_node=8 train.py --preset=fec                  # DistributedDataParallel

A run writes runs/<name>/last.pt after every epoch and resumes from it when started again with the
same out_dir; its checkpoint goes to <out_dir>/fecsim.safetensors unless --export names a path
(an existing file outside out_dir, such as the shipped model, only with --overwrite=true); when
training is done it exports the int8 encoder beside the checkpoint (labelled
folders; --int8=false skips it), calibrates on validation pairs with it, scores the test split and
exports a safetensors checkpoint with its metadata. Under torchrun every process trains on its
share of each epoch; only rank 0 logs, evaluates and writes.
"""
import json
import shlex
import sys
from pathlib import Path

import torch
from torch.utils.data import (BatchSampler, DataLoader, RandomSampler, Subset, TensorDataset,
                              WeightedRandomSampler)
from torch.utils.data.distributed import DistributedSampler

from fecsim import checkpoint, evaluate
from fecsim.augment import augment_batch
from fecsim.data import (PairsCSV, class_balance_weights, eval_transform, expression_split,
                         folder_tensor, is_vote_folder, train_transform, VoteFolder)
from fecsim.distill import Teacher
from fecsim.errors import FecsimError
from fecsim.int8 import export as export_int8, path_for as int8_path_for
from fecsim.model import ModelConfig, SiameseResNet18, load_parent_weights
from fecsim.training import batch_loss, cleanup_distributed, fit, setup_distributed

# data
data = "../shared/datasets/fer2013"   # <data>/{train,val,test}/: one folder per label (FER2013),
                                      # or images beside labels.csv of rater votes (FER+)
data_source = ""                      # provenance for the metadata; "" = KNOWN_SOURCES[folder name]
extra_pairs = ""                      # CSV of labelled pairs of face crops (a,b,same)
extra_batch_size = 16
balance = 0.0                         # class sampling: 0 = as the data comes, 1 = every class
                                      # equally often (the weak expressions are rare: FER+ has ~175
                                      # disgust faces by majority)
vote_targets = "graded"               # vote-labelled: "graded" trains on the vote distributions (soft
                                      # classes, pairs by rater agreement), "majority" on their argmax
min_agreement = 0                     # vote-labelled: validate on faces whose majority has at least
                                      # this many votes (6 of 10: FER+'s clear-majority faces)
val_fraction = 0.0                    # >0: hold this share of train out for validation instead of val/
out_dir = "runs/fer2013"
export = ""                           # "" = <out_dir>/fecsim.safetensors (the int8 file beside it)
overwrite = False                     # let --export replace an existing file outside out_dir (such
                                      # as the shipped model): never by accident
# model
head = "similarity"                   # "similarity" (ours) or "concat" (thesis)
embed_dim = 128
pair_hidden = 64
image_size = 64                       # FER2013's 48 px faces upscaled (detected faces go through 48 px
                                      # too): ResNet18's stride-32 stages get room to work
grey = True                           # FER2013 is greyscale; colour photos are turned grey to match
imagenet = False                      # start from ImageNet weights (needs a network once)
freeze_trunk = False
teacher = ""                          # labelled folders: a fecsim checkpoint whose answers on each
                                      # augmented batch are soft targets beside the labels
                                      # (knowledge distillation; fecsim.distill)
teacher_weight = 0.5                  # the teacher's share of the pair and class losses
teacher_temperature = 2.0             # softens the teacher's class probabilities
init_from = ""                        # start from this fecsim checkpoint's weights (fine-tuning, e.g.
                                      # the shipped model on flagged pairs); its history is kept.
                                      # Several, comma-separated: from the mean of their weights
                                      # (fine-tunes of one parent; with epochs=0, just that mean)
flip_average = True                   # average a face's features with its mirror image's: +0.005
                                      # validation AUC at 64 px, the same answer for a mirrored photo,
                                      # twice the inference cost (which int8 pays for)
zoom = 0.9                            # evaluation and inference see the central 0.9 of a face's side,
                                      # scaled up: training's random resized crops showed faces that
                                      # much larger (FixRes); +0.002 validation AUC at no cost
int8 = True                           # labelled folders: also export NAME.int8.onnx, the encoder
                                      # quantized for CPU inference (about 2x faster, same AUC), and
                                      # calibrate and score with it, as CPU users will run it
align_faces = True                    # inference turns a detected face so its eyes are level (FER's
                                      # faces are upright already; recorded as face.align)
face_margin = -0.04                   # detected box widened (<0: narrowed) by this share per side;
                                      # FER2013's crops are tighter than MTCNN's box: measured with
                                      # python -m scripts.check_framing <data>/val (model card)
# FEC (Google's triplets), used instead of labelled folders when fec_train is set
fec_train = ""                        # FEC train CSV
fec_images = ""                       # the folder `python -m fecsim.fec download` filled
fec_test = ""                         # FEC test CSV, scored after training
fec_mode = "triplet"                  # "triplet": FECNet's triplet loss (margin 0.1 one-class, 0.2
                                      # otherwise) + the pair head on the closer/farther pairs;
                                      # "pairs": closer/farther pairs with BCE; "thesis": images 1-2
                                      # similar iff the answer is 3, BCE
fec_pair_weight = 1.0                 # weight of the pair-head loss in "triplet" mode
fec_min_agreement = 0                 # only triplets whose majority answer has this many raters
# training
epochs = 29
batch_size = 128
optimizer = "adamw"                   # "adamw" or "adam"
lr = 3e-3
weight_decay = 0.05
schedule = "onecycle"                 # "onecycle" or "step" (StepLR, step 1 epoch)
step_gamma = 0.1
class_loss_weight = 1.0               # cross-entropy on the labels beside the pair loss
label_smoothing = 0.1
thesis_augment = False
augment = "pil"                       # labelled folders: "pil" augments each image in the loader
                                      # processes (data.train_transform; the shipped model), "device"
                                      # whole batches on the training device (fecsim.augment), where a
                                      # GPU is not held back by the CPU: same steps and ranges
domain_augment = False                # with augment=device: also degrade faces as photos from other
                                      # sources are (resolution, exposure, blur, JPEG, noise)
workers = 4                           # DataLoader processes: augmentation, not the GPU, sets the pace
seed = 0
device = ""                           # "" = cuda, then mps, then cpu
# evaluation
val_pairs = 4000
test_pairs = 1000
test_triplets = 1000
eval_seed = 0
score_test = True                     # score the test split at export (read a test split once per
                                      # model you ship: off while choosing)

KNOWN_SOURCES = {
    "fer2013": ("FER2013 (Goodfellow et al., ICML 2013 challenges in representation learning; "
                "Kaggle), official train/PublicTest/PrivateTest split, research use"),
    "ferplus": ("FER+ (Barsoum et al., ICMI 2016, arXiv 1608.01041): FER2013's faces, 10 crowd "
                "votes each over 8 expressions; labels MIT (Microsoft), images FER2013's (research "
                "use); FER2013's official split"),
}

PRESETS = {
    # Frozen ImageNet ResNet18, concatenated 512+512 -> 256 -> 1, BCE, Adam 1e-3, batch 32,
    # 20 epochs, StepLR(step 1, gamma 0.1), RandomResizedCrop + flip, 224 px, 95/5 split.
    "thesis": dict(head="concat", pair_hidden=256, imagenet=True, freeze_trunk=True, grey=False,
                   image_size=224, optimizer="adam", lr=1e-3, weight_decay=0.0, batch_size=32,
                   epochs=20, schedule="step", step_gamma=0.1, class_loss_weight=0.0,
                   label_smoothing=0.0, thesis_augment=True, val_fraction=0.05, flip_average=False,
                   zoom=1.0, int8=False,
                   fec_mode="thesis", out_dir="runs/thesis"),
    # FEC triplets at FECNet's margins, colour crops at 112 px from the 224 px cache.
    "fec": dict(fec_train="data/fec/faceexp-comparison-data-train-public.csv",
                fec_images="data/fec/images",
                fec_test="data/fec/faceexp-comparison-data-test-public.csv",
                grey=False, image_size=112, class_loss_weight=0.0, label_smoothing=0.0,
                epochs=10, batch_size=256, lr=1e-3, weight_decay=0.05, flip_average=True,
                val_fraction=0.005, workers=8, out_dir="runs/fec", zoom=1.0, int8=False),
}

# Command-line overrides: --preset first, then --name=value for any setting above.
settings = {k: v for k, v in globals().items()
            if not k.startswith("_") and isinstance(v, (int, float, str, bool))}
args = sys.argv[1:]
for arg in args:
    if arg.startswith("--preset="):
        name = arg.split("=", 1)[1]
        if name not in PRESETS:
            sys.exit(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        globals().update(PRESETS[name])
for arg in args:
    key, _, value = arg.lstrip("-").partition("=")
    if key == "preset":
        continue
    if key not in settings or not _:
        sys.exit(f"unknown setting {arg!r}; settings: {', '.join(sorted(settings))}")
    kind = type(settings[key])
    try:   # typed: a typo must not quietly become False or crash later
        if kind is bool:
            globals()[key] = {"true": True, "1": True, "yes": True,
                              "false": False, "0": False, "no": False}[value.lower()]
        else:
            globals()[key] = kind(value)   # int("1.5") and float("fast") refuse
    except (KeyError, ValueError):
        wanted = "true/false, 1/0 or yes/no" if kind is bool else f"a{'n' * (kind is int)} {kind.__name__}"
        sys.exit(f"--{key}={value}: {key} takes {wanted} (default {settings[key]!r})")
export = export or str(Path(out_dir) / "fecsim.safetensors")
writes = [Path(export)] + ([int8_path_for(export)] if int8 and not fec_train else [])
outside = [p for p in writes if p.exists() and not p.resolve().is_relative_to(Path(out_dir).resolve())]
if outside and not overwrite:
    sys.exit(f"{', '.join(map(str, outside))} exists outside out_dir={out_dir}; add --overwrite=true "
             "to replace it, or export elsewhere")
config = {k: globals()[k] for k in settings}
command = "python train.py " + " ".join(shlex.quote(a) for a in args)

torch.manual_seed(seed)
ddp = setup_distributed(device or None)   # one plain process unless started by torchrun
dev, is_main = ddp.device, ddp.is_main
log = print if is_main else (lambda *a, **k: None)
if dev.type == "cuda":
    torch.backends.cudnn.benchmark = True   # fixed input size: let cuDNN pick its fastest kernels
if vote_targets not in ("graded", "majority"):
    sys.exit(f"vote_targets={vote_targets!r}: 'graded' or 'majority'")
if (domain_augment or vote_targets != "graded") and augment != "device":
    sys.exit("domain_augment and vote_targets=majority need augment=device")
if augment not in ("pil", "device") or (augment == "device" and (fec_train or thesis_augment)):
    sys.exit(f"augment={augment!r}: 'pil', or 'device' for labelled folders without the thesis's "
             "augmentation")
view = {"input_size": image_size, "grey": grey, "flip_average": flip_average, "zoom": zoom}  # meta's
if fec_train:
    from fecsim.fec.evaluate import format_report
    from fecsim.fec.loss import triplet_and_pair_loss
    from fecsim.fec.training import FecRun
    try:
        fec = FecRun(fec_train, fec_images, fec_mode, fec_min_agreement, val_fraction, seed, log)
    except FecsimError as exc:
        sys.exit(str(exc))
    train_images = fec.dataset(train_transform(image_size, grey, thesis_augment))
    class_names, val_labels = [], fec.val
else:
    root = Path(data)
    if augment == "device":   # decoded once; batches are augmented on the device (batches below)
        decoded, targets, class_names = folder_tensor(root / "train", image_size, grey, workers)
        if targets.dim() == 2 and vote_targets == "majority":
            targets = targets.argmax(1)
        train_set = TensorDataset(decoded, targets)
        # the majority label of a vote distribution
        train_targets = (targets.argmax(1) if targets.dim() == 2 else targets).tolist()
    else:
        train_set = expression_split(root / "train", train_transform(image_size, grey, thesis_augment))
        class_names, train_targets = train_set.classes, train_set.targets
    if val_fraction > 0:
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed)).tolist()
        n_val = int(len(order) * val_fraction)
        val_folder = None
        val_images = Subset(expression_split(root / "train", eval_transform(image_size, grey)), order[:n_val])
        val_labels = [train_targets[i] for i in order[:n_val]]
        train_images = Subset(train_set, order[n_val:])
    else:
        val_folder = expression_split(root / "val", eval_transform(image_size, grey))
        val_images, val_labels = val_folder, val_folder.targets
        if min_agreement:
            keep = evaluate.clear_majority(val_folder, min_agreement)
            val_images, val_labels = Subset(val_folder, keep), [val_labels[i] for i in keep]
        train_images = train_set

model = SiameseResNet18(ModelConfig(head=head, embed_dim=embed_dim, pair_hidden=pair_hidden,
                                    num_classes=len(class_names) if class_loss_weight > 0 else 0,
                                    class_names=class_names),
                        imagenet=imagenet, freeze_trunk=freeze_trunk).to(dev)
if dev.type == "cuda":
    model.to(memory_format=torch.channels_last)   # about twice the training rate on tensor cores
parents = []
if init_from:
    paths = init_from.split(",")
    try:
        parent_model, parent_metas = checkpoint.load_average(paths, "cpu")
    except FecsimError as exc:
        sys.exit(str(exc))
    try:
        fresh = load_parent_weights(model, parent_model)
    except RuntimeError as exc:
        sys.exit(f"{init_from} does not fit this run's model settings (head, embed_dim, "
                 f"pair_hidden, classes): {exc}")
    parents = [{"path": p, "sha256": checkpoint.sha256(p), "training": m.get("training")}
               for p, m in zip(paths, parent_metas)]
    if fresh:
        log(f"classes the parent did not know start fresh: {', '.join(fresh)}")
teacher_model = None
if teacher:
    if fec_train:
        sys.exit("teacher: distillation is for labelled folders")
    try:
        teacher_model = Teacher(teacher, dev, teacher_weight, teacher_temperature)
    except (FecsimError, ValueError) as exc:
        sys.exit(str(exc))
params = [p for p in model.parameters() if p.requires_grad]
opt = (torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay) if optimizer == "adamw"
       else torch.optim.Adam(params, lr=lr, weight_decay=weight_decay))
# Under torchrun each process reads its own share of every epoch.
sampler = DistributedSampler(train_images, seed=seed) if ddp.world_size > 1 else None
if balance:
    if sampler is not None or fec_train or val_fraction:
        sys.exit("balance: for labelled folders with their own val/, in one process")
    sampler = WeightedRandomSampler(class_balance_weights(train_targets, balance), len(train_images))
if augment == "device":   # whole batches indexed straight out of the decoded tensor
    loader = DataLoader(train_images, batch_size=None, sampler=BatchSampler(
        sampler or RandomSampler(train_images), batch_size, drop_last=True))
else:
    loader = DataLoader(train_images, batch_size=batch_size, shuffle=sampler is None,
                        sampler=sampler, drop_last=True, num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=dev.type == "cuda")
extra = None
if extra_pairs:
    if fec_train and fec_mode != "triplet":
        sys.exit("extra_pairs mixes into labelled-folder or fec_mode=triplet batches only")
    extra = DataLoader(PairsCSV(extra_pairs, train_transform(image_size, grey, thesis_augment)),
                       batch_size=extra_batch_size, shuffle=True, num_workers=0)
if epochs == 0:   # nothing to train: calibrate, score and export the starting weights
    sched = None
elif schedule == "onecycle":
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                steps_per_epoch=len(loader))
else:
    # StepLR stepped once per epoch, as in the thesis (the loop steps every batch).
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: step_gamma ** (step // len(loader)))


def batches(epoch):
    torch.manual_seed(seed + epoch + 1000 * ddp.rank)   # augmentations differ between processes
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)                         # a fresh shuffle, split the same way by all
    extra_iter = iter(extra) if extra else None
    for item in loader:
        if fec_train:
            batch = item
        elif augment == "device":
            batch = {"images": augment_batch(item[0].to(dev, non_blocking=True), image_size,
                                                domain=domain_augment),
                     "labels": item[1]}
        else:
            batch = {"images": item[0], "labels": item[1]}
        if extra_iter is not None:
            try:
                a, b, same = next(extra_iter)
            except StopIteration:
                extra_iter = iter(extra)
                a, b, same = next(extra_iter)
            batch.update(a=a, b=b, same=same)
        yield batch


def validate(m):
    if fec_train:
        return fec.validate(m, view, dev, workers)
    z, labels = evaluate.split_features(m, val_images, dev, view, workers=workers)
    labels = torch.as_tensor(val_labels).numpy()
    cal = evaluate.calibrate(m, z, labels, val_pairs, eval_seed, dev)
    res = {"val_auc": evaluate.score(m, z, labels, cal, val_pairs, 0, eval_seed + 1, dev)["pair_auc"]}
    if m.classifier is not None:
        res["val_class_acc"] = round(float((m.classify(z.to(dev)).argmax(1).cpu().numpy() == labels).mean()), 4)
    return res


def loss_fn(m, batch):
    if fec_train and fec_mode == "triplet":
        loss, parts = triplet_and_pair_loss(m, batch, fec_pair_weight)
        if "a" in batch:   # extra labelled pairs
            extra_loss, extra_parts = batch_loss(m, {k: batch[k] for k in ("a", "b", "same")})
            loss, parts = loss + extra_loss, {**parts, **extra_parts}
        return loss, parts
    return batch_loss(m, batch, class_loss_weight, label_smoothing, teacher_model)


log(f"device {dev} x {ddp.world_size} processes; {len(train_images)} training "
    f"{'items' if fec_train else 'images'}, {len(val_labels)} validation; {command}")
history = fit(model, opt, sched, batches, epochs, out_dir, dev, loss_fn=loss_fn, evaluate=validate,
              is_main=is_main, log=log)
if not is_main:
    cleanup_distributed()
    sys.exit(0)

model.eval()
training = {"command": command, "settings": config, "history": history,
            "processes": ddp.world_size, "init_from": parents,
            **({"teacher": {"path": teacher, "sha256": teacher_model.sha256}} if teacher else {})}
if fec_train:
    meta = {**view, **fec.finish(model, view, dev, fec_test, workers), "training": training}
    if "fec_test" in meta["metrics"]:
        print(format_report(meta["metrics"]["fec_test"]))
else:
    # Calibrate on validation pairs, score the test split: with the int8 encoder where there is one.
    encoder = model
    if int8:
        faces = expression_split(root / "train", eval_transform(image_size, grey))
        pick = torch.randperm(len(faces), generator=torch.Generator().manual_seed(seed))[:512]
        faces = torch.stack([faces[i][0] for i in pick.tolist()])
        encoder = export_int8(model, evaluate.model_inputs(faces, view), int8_path_for(export))
    # Vote-labelled: on every validation face (the app meets unclear faces too), to rater agreement.
    votes = getattr(val_folder, "votes", None)
    cal_images, cal_labels = (val_folder, val_folder.targets) if votes is not None else (val_images, val_labels)
    z, _ = evaluate.split_features(encoder, cal_images, dev, view, workers=workers)
    calibration = evaluate.calibrate(model, z, torch.as_tensor(cal_labels).numpy(), val_pairs,
                                     eval_seed, dev, None if votes is None else votes.numpy())
    meta = {
        **view, "face": {"margin": face_margin, "square": True, "source_size": 48 if grey else None,
                 "align": align_faces},
        "calibration": calibration, "training": training,
        **({"int8": {"file": encoder.path.name, "sha256": encoder.sha256,
                     "calibration_faces": len(faces)}} if int8 else {}),
        "data": {"name": root.name, "source": data_source or KNOWN_SOURCES.get(root.name, ""),
                 "path": str(root), "classes": class_names,
                 "images": {"train": len(train_images), "validation": len(val_labels)}},
    }
    if is_vote_folder(root / "train"):   # faces most raters could not read, left out
        meta["data"]["dropped_unreadable"] = {split: VoteFolder(root / split).dropped
                                              for split in ("train", "val", "test")
                                              if (root / split).is_dir()}
        meta["data"]["validation_min_agreement"] = min_agreement
    if score_test and (root / "test").is_dir():
        meta["metrics"] = {"test": evaluate.evaluate_folder(model, meta, root / "test", test_pairs,
                                                            test_triplets, eval_seed, dev, encoder)}
path = checkpoint.save(export, model, meta)
(Path(out_dir) / "metrics.json").write_text(json.dumps(meta.get("metrics", {}), indent=2))
print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")
if not fec_train:
    print(json.dumps({k: v for k, v in meta.get("metrics", {}).get("test", {}).items()
                      if k != "reliability"}, indent=2))
cleanup_distributed()
