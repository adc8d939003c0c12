"""Train a fecsim model. Settings are the plain values below; override any as --name=value.

    python train.py                                  # the base model, from FER2013 folders, into
                                                     # runs/fer2013/fecsim.safetensors
    python train.py --epochs=1 --out_dir=runs/quick  # a short run (runs/quick/fecsim.safetensors)
    python train.py --preset=thesis                  # the 2023 thesis configuration (needs a network)
    python train.py --extra_pairs=flags.csv          # mix in labelled pairs (e.g. exported app flags)
    python train.py --init_from=checkpoints/fecsim-ferplus.safetensors --extra_pairs=flags.csv \
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
import os
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, WeightedRandomSampler
from torch.utils.data.distributed import DistributedSampler

from fecsim import checkpoint, heads
from fecsim.data import (class_balance_weights, eval_transform, expression_split, targets_of,
                         train_transform)
from fecsim.evaluate import dataset_features
from fecsim.distill import Teacher
from fecsim.errors import FecsimError
from fecsim.export import export_run
from fecsim.fec.source import FecTriplets
from fecsim.int8 import path_for as int8_path_for
from fecsim.model import ModelConfig, SiameseResNet18, load_parent_weights
from fecsim.sources import ExtraPairs, Folders
from fecsim.training import cleanup_distributed, fit, setup_distributed
from fecsim.view import View

# data
data = "../shared/datasets/fer2013"   # <data>/{train,val,test}/: one folder per label (FER2013),
                                      # or images beside labels.csv of rater votes (FER+)
data_source = ""                      # provenance for the metadata; "" = sources.KNOWN_SOURCES[name]
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
pair_score = "head"                   # "head": the pair head's logit; "expressions": how far the two
                                      # faces' expression distributions overlap (a face and itself: 1)
pair_temperature = 1.0                # expressions: the distributions are sharpened by this for pairs
geometry = False                      # a second view: each face's blendshapes at full resolution
                                      # (fecsim/geometry.py; needs mediapipe)
head_only = False                     # train only the expression heads on init_from's trunk, frozen,
                                      # from each training face's stored features (fecsim/heads.py)
logit_adjust = 0.0                    # head_only: lean the classifier away from common expressions
                                      # by this * log(class prior) (Menon et al., 2021)
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
flip_average = True                   # average a face's features with its mirror image's: the same
                                      # answer for a mirrored photo, at twice the inference cost
zoom = 0.9                            # evaluation and inference see the central 0.9 of a face's side,
                                      # scaled up: training's random resized crops showed faces that
                                      # much larger (FixRes)
int8 = True                           # labelled folders: also export NAME.int8.onnx, the encoder
                                      # quantized for CPU inference, with its own calibration
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


def main():
    torch.manual_seed(seed)
    ddp = setup_distributed(device or None)   # one plain process unless started by torchrun
    dev, is_main = ddp.device, ddp.is_main
    log = print if is_main else (lambda *a, **k: None)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True   # fixed input size: cuDNN picks its fastest kernels
    check_settings()
    view = View(input_size=image_size, grey=grey, flip_average=flip_average, zoom=zoom)
    s = SimpleNamespace(**{k: globals()[k] for k in settings})
    try:
        teacher_model = Teacher(teacher, dev, teacher_weight, teacher_temperature) if teacher else None
    except ValueError as exc:   # a bad weight, or a teacher without a classifier
        sys.exit(str(exc))
    source = FecTriplets.from_settings(s, log) if fec_train else Folders(s, teacher_model)
    extra = (ExtraPairs(extra_pairs, train_transform(image_size, grey, thesis_augment),
                        extra_batch_size) if extra_pairs else None)

    model = SiameseResNet18(ModelConfig(
        head=head, embed_dim=embed_dim, pair_hidden=pair_hidden,
        num_classes=len(source.class_names) if class_loss_weight > 0 else 0,
        class_names=list(source.class_names), pair_score=pair_score,
        pair_temperature=pair_temperature, geometry=geometry),
        imagenet=imagenet, freeze_trunk=freeze_trunk).to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)   # faster convolutions on tensor cores
    parents = start_from(model, log) if init_from else []
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay) if optimizer == "adamw"
           else torch.optim.Adam(params, lr=lr, weight_decay=weight_decay))
    loader, sampler = make_loader(source.train_set, source, ddp, dev)
    sched = make_schedule(opt, len(loader))

    def batches(epoch):
        torch.manual_seed(seed + epoch + 1000 * ddp.rank)   # augmentations differ between processes
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)                         # a fresh shuffle, split alike by all
        if extra:
            extra.restart()
        for item in loader:
            batch = source.batch(item, dev)
            yield extra.add_to(batch) if extra else batch

    log(f"device {dev} x {ddp.world_size} processes; {len(source.train_set)} training "
        f"{'items' if fec_train else 'images'}, {len(source.val_labels)} validation; {command}")
    if head_only:
        history = train_heads(model, source, view, dev, log)
    else:
        history = fit(model, opt, sched, batches, epochs, out_dir, dev, loss_fn=source.loss,
                      evaluate=lambda m: source.validate(m, view, dev), is_main=is_main, log=log)
    if is_main:
        training = {"command": command, "settings": config, "history": history,
                    "processes": ddp.world_size, "init_from": parents,
                    **({"teacher": {"path": teacher, "sha256": teacher_model.sha256}}
                       if teacher else {})}
        meta = export_run(model, source, view, export, dev, training, int8=int8)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(meta.metrics, indent=2))
        print(f"exported {export} ({Path(export).stat().st_size / 1e6:.1f} MB)")
        print(source.summary(meta.metrics))
    cleanup_distributed()


def check_settings():
    """Combinations that cannot work, refused before any data is read."""
    if vote_targets not in ("graded", "majority"):
        sys.exit(f"vote_targets={vote_targets!r}: 'graded' or 'majority'")
    if (domain_augment or vote_targets != "graded") and augment != "device":
        sys.exit("domain_augment and vote_targets=majority need augment=device")
    if augment not in ("pil", "device") or (augment == "device" and (fec_train or thesis_augment)):
        sys.exit(f"augment={augment!r}: 'pil', or 'device' for labelled folders without the "
                 "thesis's augmentation")
    if teacher and fec_train:
        sys.exit("teacher: distillation is for labelled folders")
    if extra_pairs and fec_train and fec_mode != "triplet":
        sys.exit("extra_pairs mixes into labelled-folder or fec_mode=triplet batches only")
    if head_only and not (init_from and class_loss_weight > 0 and not fec_train):
        sys.exit("head_only trains the expression heads of a trained model on labelled folders: "
                 "give --init_from (and keep class_loss_weight > 0)")
    if (pair_score == "expressions" or geometry) and not class_loss_weight > 0:
        sys.exit("pair_score=expressions and geometry read the expression classifier: keep "
                 "class_loss_weight > 0")
    if balance and (int(os.environ.get("WORLD_SIZE", "1")) > 1 or fec_train or val_fraction):
        sys.exit("balance: for labelled folders with their own val/, in one process")


def train_heads(model, source, view, dev, log) -> list[dict]:
    """head_only: the heads on the frozen trunk's features of every training face (stored in
    out_dir: computed once, read again when the run is started again)."""
    faces = expression_split(Path(data) / "train", eval_transform(image_size, grey))
    model.eval()
    z = heads.cached(Path(out_dir) / "train_features.pt",
                     lambda: dataset_features(model, faces, view, dev, workers=workers))
    targets = targets_of(faces)
    votes = targets.float() if targets.dim() == 2 else F.one_hot(targets, model.config.num_classes).float()
    history = heads.fit_heads(model, z.to(dev), votes.to(dev), epochs, lr, balance, seed, log=log)
    if logit_adjust:
        shift = heads.adjust_for_priors(model, votes.argmax(1).numpy(), logit_adjust)
        log(f"classifier biases adjusted by {logit_adjust} * -log(prior): {shift}")
    history.append(source.validate(model.eval(), view, dev))
    log(f"validation: {history[-1]}")
    return history


def start_from(model, log) -> list[dict]:
    """Load init_from's weights (several: their mean) into model; their provenance."""
    paths = init_from.split(",")
    parent_model, parent_metas = checkpoint.load_average(paths, "cpu")
    try:
        fresh = load_parent_weights(model, parent_model)
    except RuntimeError as exc:
        sys.exit(f"{init_from} does not fit this run's model settings (head, embed_dim, "
                 f"pair_hidden, classes): {exc}")
    if fresh:
        log(f"classes the parent did not know start fresh: {', '.join(fresh)}")
    return [{"path": p, "sha256": checkpoint.sha256(p), "training": m.training}
            for p, m in zip(paths, parent_metas)]


def make_loader(train_set, source, ddp, dev):
    # Under torchrun each process reads its own share of every epoch.
    sampler = DistributedSampler(train_set, seed=seed) if ddp.world_size > 1 else None
    if balance:
        sampler = WeightedRandomSampler(class_balance_weights(source.train_targets, balance),
                                        len(train_set))
    if source.device_batches:   # whole batches indexed straight out of the decoded tensor
        return DataLoader(train_set, batch_size=None, sampler=BatchSampler(
            sampler or RandomSampler(train_set), batch_size, drop_last=True)), sampler
    return DataLoader(train_set, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                      drop_last=True, num_workers=workers, persistent_workers=workers > 0,
                      pin_memory=dev.type == "cuda"), sampler


def make_schedule(opt, steps_per_epoch: int):
    if epochs == 0:   # nothing to train: calibrate, score and export the starting weights
        return None
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                   steps_per_epoch=steps_per_epoch)
    # StepLR stepped once per epoch, as in the thesis (the loop steps every batch).
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: step_gamma ** (step // steps_per_epoch))


if __name__ == "__main__":
    try:
        main()
    except FecsimError as exc:   # bad input: one line, no traceback
        sys.exit(str(exc))
