"""Train a fecsim model. Settings are fecsim.train.config.TrainConfig's; override any as --name=value.

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
    python train.py --preset=fec                     # FEC triplets (python -m fecsim.train.fec download first)
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
import sys
from pathlib import Path

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, WeightedRandomSampler
from torch.utils.data.distributed import DistributedSampler

from fecsim import checkpoint
from fecsim.train import heads
from fecsim.train.data import (class_balance_weights, eval_transform, expression_split, targets_of,
                               train_transform)
from fecsim.train.evaluate import dataset_features
from fecsim.train.distill import Teacher
from fecsim.errors import FecsimError
from fecsim.train.finish import finish_run
from fecsim.train.fec.source import FecTriplets
from fecsim.int8 import path_for as int8_path_for
from fecsim.model import ModelConfig, SiameseResNet18, load_parent_weights
from fecsim.train.config import SettingError, TrainConfig, command as run_command
from fecsim.train.sources import ExtraPairs, Folders
from fecsim.train.loop import cleanup_distributed, fit, setup_distributed
from fecsim.view import View


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    try:
        c = TrainConfig.from_args(args)
    except SettingError as exc:
        sys.exit(str(exc))
    refuse_overwriting(c)
    command = run_command(args)
    torch.manual_seed(c.seed)
    ddp = setup_distributed(c.device or None)   # one plain process unless started by torchrun
    dev, is_main = ddp.device, ddp.is_main
    log = print if is_main else (lambda *a, **k: None)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True   # fixed input size: cuDNN picks its fastest kernels
    check_settings(c)
    view = View(input_size=c.image_size, grey=c.grey, flip_average=c.flip_average, zoom=c.zoom)
    try:
        teacher_model = Teacher(c.teacher, dev, c.teacher_weight, c.teacher_temperature) if c.teacher else None
    except ValueError as exc:   # a bad weight, or a teacher without a classifier
        sys.exit(str(exc))
    source = FecTriplets.from_config(c, log) if c.fec_train else Folders(c, teacher_model)
    extra = (ExtraPairs(c.extra_pairs, train_transform(c.image_size, c.grey, c.thesis_augment),
                        c.extra_batch_size) if c.extra_pairs else None)

    model = SiameseResNet18(ModelConfig(
        head=c.head, embed_dim=c.embed_dim, pair_hidden=c.pair_hidden,
        num_classes=len(source.class_names) if c.class_loss_weight > 0 else 0,
        class_names=list(source.class_names), pair_score=c.pair_score,
        pair_temperature=c.pair_temperature, geometry=c.geometry),
        imagenet=c.imagenet, freeze_trunk=c.freeze_trunk).to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)   # faster convolutions on tensor cores
    parents = start_from(c, model, log) if c.init_from else []
    log(f"device {dev} x {ddp.world_size} processes; {len(source.train_set)} training "
        f"{'items' if c.fec_train else 'images'}, {len(source.val_labels)} validation; {command}")
    if c.head_only:
        history = train_heads(c, model, source, view, dev, log)
    else:
        history = train_all(c, model, source, extra, view, ddp, log)
    if is_main:
        training = {"command": command, "settings": c.settings(), "history": history,
                    "processes": ddp.world_size, "init_from": parents,
                    **({"teacher": {"path": c.teacher, "sha256": teacher_model.sha256}}
                       if c.teacher else {})}
        meta = finish_run(model, source, view, c.export, dev, training, int8=c.int8)
        (Path(c.out_dir) / "metrics.json").write_text(json.dumps(meta.metrics, indent=2))
        print(f"exported {c.export} ({Path(c.export).stat().st_size / 1e6:.1f} MB)")
        print(source.summary(meta.metrics))
    cleanup_distributed()


def train_all(c: TrainConfig, model, source, extra, view, ddp, log) -> list[dict]:
    """The whole model, trunk included: the resumable loop over augmented batches."""
    dev = ddp.device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay) if c.optimizer == "adamw"
           else torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay))
    loader, sampler = make_loader(c, source.train_set, source, ddp, dev)
    sched = make_schedule(c, opt, len(loader))

    def batches(epoch):
        torch.manual_seed(c.seed + epoch + 1000 * ddp.rank)   # augmentations differ between processes
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)                         # a fresh shuffle, split alike by all
        if extra:
            extra.restart()
        for item in loader:
            batch = source.batch(item, dev)
            yield extra.add_to(batch) if extra else batch

    return fit(model, opt, sched, batches, c.epochs, c.out_dir, dev, loss_fn=source.loss,
               evaluate=lambda m: source.validate(m, view, dev), is_main=ddp.is_main, log=log)


def refuse_overwriting(c: TrainConfig):
    """An existing checkpoint outside out_dir (the shipped model) is replaced only on request."""
    writes = [Path(c.export)] + ([int8_path_for(c.export)] if c.int8 and not c.fec_train else [])
    outside = [p for p in writes
               if p.exists() and not p.resolve().is_relative_to(Path(c.out_dir).resolve())]
    if outside and not c.overwrite:
        sys.exit(f"{', '.join(map(str, outside))} exists outside out_dir={c.out_dir}; add "
                 "--overwrite=true to replace it, or export elsewhere")


def check_settings(c: TrainConfig):
    """Combinations that cannot work, refused before any data is read."""
    if c.vote_targets not in ("graded", "majority"):
        sys.exit(f"vote_targets={c.vote_targets!r}: 'graded' or 'majority'")
    if (c.domain_augment or c.vote_targets != "graded") and c.augment != "device":
        sys.exit("domain_augment and vote_targets=majority need augment=device")
    if c.augment not in ("pil", "device") or (c.augment == "device" and (c.fec_train or c.thesis_augment)):
        sys.exit(f"augment={c.augment!r}: 'pil', or 'device' for labelled folders without the "
                 "thesis's augmentation")
    if c.teacher and c.fec_train:
        sys.exit("teacher: distillation is for labelled folders")
    if c.extra_pairs and c.fec_train and c.fec_mode != "triplet":
        sys.exit("extra_pairs mixes into labelled-folder or fec_mode=triplet batches only")
    if c.head_only and not (c.init_from and c.class_loss_weight > 0 and not c.fec_train):
        sys.exit("head_only trains the expression heads of a trained model on labelled folders: "
                 "give --init_from (and keep class_loss_weight > 0)")
    if (c.pair_score == "expressions" or c.geometry) and not c.class_loss_weight > 0:
        sys.exit("pair_score=expressions and geometry read the expression classifier: keep "
                 "class_loss_weight > 0")
    if c.balance and (int(os.environ.get("WORLD_SIZE", "1")) > 1 or c.fec_train or c.val_fraction):
        sys.exit("balance: for labelled folders with their own val/, in one process")


def train_heads(c: TrainConfig, model, source, view, dev, log) -> list[dict]:
    """head_only: the expression heads on the frozen trunk's features of every training face
    (stored in out_dir: computed once, read again when the run is started again)."""
    faces = expression_split(Path(c.data) / "train", eval_transform(c.image_size, c.grey))
    model.eval()
    z = heads.cached(Path(c.out_dir) / "train_features.pt",
                     lambda: dataset_features(model, faces, view, dev, workers=c.workers))
    targets = targets_of(faces)
    votes = (targets.float() if targets.dim() == 2
             else torch.nn.functional.one_hot(targets, model.config.num_classes).float())
    history = heads.fit_heads(model, z.to(dev), votes.to(dev), c.epochs, c.lr, c.balance, c.seed,
                              log=log)
    if c.logit_adjust:
        shift = heads.adjust_for_priors(model, votes.argmax(1).numpy(), c.logit_adjust)
        log(f"classifier biases adjusted by {c.logit_adjust} * -log(prior): {shift}")
    history.append(source.validate(model.eval(), view, dev))
    log(f"validation: {history[-1]}")
    return history


def start_from(c: TrainConfig, model, log) -> list[dict]:
    """Load init_from's weights (several: their mean) into model; their provenance."""
    paths = c.init_from.split(",")
    parent_model, parent_metas = checkpoint.load_average(paths, "cpu")
    try:
        fresh = load_parent_weights(model, parent_model)
    except RuntimeError as exc:
        sys.exit(f"{c.init_from} does not fit this run's model settings (head, embed_dim, "
                 f"pair_hidden, classes): {exc}")
    if fresh:
        log(f"classes the parent did not know start fresh: {', '.join(fresh)}")
    return [{"path": p, "sha256": checkpoint.sha256(p), "training": m.training}
            for p, m in zip(paths, parent_metas)]


def make_loader(c: TrainConfig, train_set, source, ddp, dev):
    # Under torchrun each process reads its own share of every epoch.
    sampler = DistributedSampler(train_set, seed=c.seed) if ddp.world_size > 1 else None
    if c.balance:
        sampler = WeightedRandomSampler(class_balance_weights(source.train_targets, c.balance),
                                        len(train_set))
    if source.device_batches:   # whole batches indexed straight out of the decoded tensor
        return DataLoader(train_set, batch_size=None, sampler=BatchSampler(
            sampler or RandomSampler(train_set), c.batch_size, drop_last=True)), sampler
    return DataLoader(train_set, batch_size=c.batch_size, shuffle=sampler is None, sampler=sampler,
                      drop_last=True, num_workers=c.workers, persistent_workers=c.workers > 0,
                      pin_memory=dev.type == "cuda"), sampler


def make_schedule(c: TrainConfig, opt, steps_per_epoch: int):
    if c.epochs == 0:   # nothing to train: calibrate, score and export the starting weights
        return None
    if c.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, epochs=c.epochs,
                                                   steps_per_epoch=steps_per_epoch)
    # StepLR stepped once per epoch, as in the thesis (the loop steps every batch).
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: c.step_gamma ** (step // steps_per_epoch))


if __name__ == "__main__":
    try:
        main()
    except FecsimError as exc:   # bad input: one line, no traceback
        sys.exit(str(exc))
