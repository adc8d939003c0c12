"""A training run's settings: one typed TrainConfig, its presets, and the command line that sets
them (`python train.py --preset=fec --epochs=3`). Library code takes the TrainConfig itself."""
from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, fields
from pathlib import Path


class SettingError(ValueError):
    """A setting that cannot be used; the message says which and what it takes."""


@dataclass
class TrainConfig:
    # data
    data: str = "../shared/datasets/fer2013" # <data>/{train,val,test}/: one folder per label (FER2013),
                                          # or images beside labels.csv of rater votes (FER+)
    data_source: str = ""                 # provenance for the metadata; "" = sources.KNOWN_SOURCES[name]
    extra_pairs: str = ""                 # CSV of labelled pairs of face crops (a,b,same)
    extra_batch_size: int = 16
    balance: float = 0.0                  # class sampling: 0 = as the data comes, 1 = every class
                                          # equally often (the weak expressions are rare: FER+ has ~175
                                          # disgust faces by majority)
    vote_targets: str = "graded"          # vote-labelled: "graded" trains on the vote distributions (soft
                                          # classes, pairs by rater agreement), "majority" on their argmax
    min_agreement: int = 0                # vote-labelled: validate on faces whose majority has at least
                                          # this many votes (6 of 10: FER+'s clear-majority faces)
    val_fraction: float = 0.0             # >0: hold this share of train out for validation instead of val/
    out_dir: str = "runs/fer2013"
    export: str = ""                      # "" = <out_dir>/fecsim.safetensors (the int8 file beside it)
    overwrite: bool = False               # let --export replace an existing file outside out_dir (such
                                          # as the shipped model): never by accident
    # model
    head: str = "similarity"              # "similarity" (ours) or "concat" (thesis)
    embed_dim: int = 128
    pair_score: str = "head"              # "head": the pair head's logit; "expressions": how far the two
                                          # faces' expression distributions overlap (a face and itself: 1)
    pair_temperature: float = 1.0         # expressions: the distributions are sharpened by this for pairs
    geometry: bool = False                # a second view: each face's blendshapes at full resolution
                                          # (fecsim/geometry.py; needs mediapipe)
    head_only: bool = False               # train only the expression heads on init_from's trunk, frozen,
                                          # from each training face's stored features (train/heads.py)
    logit_adjust: float = 0.0             # head_only: lean the classifier away from common expressions
                                          # by this * log(class prior) (Menon et al., 2021)
    pair_hidden: int = 64
    image_size: int = 64                  # FER2013's 48 px faces upscaled (detected faces go through 48 px
                                          # too): ResNet18's stride-32 stages get room to work
    grey: bool = True                     # FER2013 is greyscale; colour photos are turned grey to match
    imagenet: bool = False                # start from ImageNet weights (needs a network once)
    freeze_trunk: bool = False
    teacher: str = ""                     # labelled folders: a fecsim checkpoint whose answers on each
                                          # augmented batch are soft targets beside the labels
                                          # (knowledge distillation; fecsim.train.distill)
    teacher_weight: float = 0.5           # the teacher's share of the pair and class losses
    teacher_temperature: float = 2.0      # softens the teacher's class probabilities
    init_from: str = ""                   # start from this fecsim checkpoint's weights (fine-tuning, e.g.
                                          # the shipped model on flagged pairs); its history is kept.
                                          # Several, comma-separated: from the mean of their weights
                                          # (fine-tunes of one parent; with epochs=0, just that mean)
    flip_average: bool = True             # average a face's features with its mirror image's: the same
                                          # answer for a mirrored photo, at twice the inference cost
    zoom: float = 0.9                     # evaluation and inference see the central 0.9 of a face's side,
                                          # scaled up: training's random resized crops showed faces that
                                          # much larger (FixRes)
    int8: bool = True                     # labelled folders: also export NAME.int8.onnx, the encoder
                                          # quantized for CPU inference, with its own calibration
    align_faces: bool = True              # inference turns a detected face so its eyes are level (FER's
                                          # faces are upright already; recorded as face.align)
    face_margin: float = -0.04            # detected box widened (<0: narrowed) by this share per side;
                                          # FER2013's crops are tighter than MTCNN's box: measured with
                                          # python -m scripts.check_framing <data>/val (model card)
    # FEC (Google's triplets), used instead of labelled folders when fec_train is set
    fec_train: str = ""                   # FEC train CSV
    fec_images: str = ""                  # the folder `python -m fecsim.train.fec download` filled
    fec_test: str = ""                    # FEC test CSV, scored after training
    fec_mode: str = "triplet"             # "triplet": FECNet's triplet loss (margin 0.1 one-class, 0.2
                                          # otherwise) + the pair head on the closer/farther pairs;
                                          # "pairs": closer/farther pairs with BCE; "thesis": images 1-2
                                          # similar iff the answer is 3, BCE
    fec_pair_weight: float = 1.0          # weight of the pair-head loss in "triplet" mode
    fec_min_agreement: int = 0            # only triplets whose majority answer has this many raters
    # training
    epochs: int = 29
    batch_size: int = 128
    optimizer: str = "adamw"              # "adamw" or "adam"
    lr: float = 3e-3
    weight_decay: float = 0.05
    schedule: str = "onecycle"            # "onecycle" or "step" (StepLR, step 1 epoch)
    step_gamma: float = 0.1
    class_loss_weight: float = 1.0        # cross-entropy on the labels beside the pair loss
    label_smoothing: float = 0.1
    thesis_augment: bool = False
    augment: str = "pil"                  # labelled folders: "pil" augments each image in the loader
                                          # processes (data.train_transform; the shipped model), "device"
                                          # whole batches on the training device (fecsim.train.augment), where a
                                          # GPU is not held back by the CPU: same steps and ranges
    domain_augment: bool = False          # with augment=device: also degrade faces as photos from other
                                          # sources are (resolution, exposure, blur, JPEG, noise)
    workers: int = 4                      # DataLoader processes: augmentation, not the GPU, sets the pace
    seed: int = 0
    device: str = ""                      # "" = cuda, then mps, then cpu
    # evaluation
    val_pairs: int = 4000
    test_pairs: int = 1000
    test_triplets: int = 1000
    eval_seed: int = 0
    score_test: bool = True               # score the test split at export (read a test split once per
                                          # model you ship: off while choosing)

    def settings(self) -> dict:
        """Every setting by name, as the checkpoint records them."""
        return asdict(self)

    @classmethod
    def from_args(cls, args: list[str]) -> "TrainConfig":
        """--preset first, then --name=value for any setting; export defaults to
        <out_dir>/fecsim.safetensors. Raises SettingError for an unknown or mistyped setting."""
        config = cls()
        for arg in args:
            if arg.startswith("--preset="):
                name = arg.split("=", 1)[1]
                if name not in PRESETS:
                    raise SettingError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
                for key, value in PRESETS[name].items():
                    setattr(config, key, value)
        defaults = {f.name: f.default for f in fields(cls)}
        for arg in args:
            key, _, value = arg.lstrip("-").partition("=")
            if key == "preset":
                continue
            if key not in defaults or not _:
                raise SettingError(f"unknown setting {arg!r}; settings: {', '.join(sorted(defaults))}")
            setattr(config, key, _typed(key, value, defaults[key]))
        config.export = config.export or str(Path(config.out_dir) / "fecsim.safetensors")
        return config


def command(args: list[str]) -> str:
    """The command that started the run, as recorded in the checkpoint."""
    return "python train.py " + " ".join(shlex.quote(a) for a in args)


def _typed(key: str, value: str, default):
    kind = type(default)
    try:   # typed: a typo must not quietly become False or crash later
        if kind is bool:
            return {"true": True, "1": True, "yes": True,
                    "false": False, "0": False, "no": False}[value.lower()]
        return kind(value)   # int("1.5") and float("fast") refuse
    except (KeyError, ValueError):
        wanted = "true/false, 1/0 or yes/no" if kind is bool else f"a{'n' * (kind is int)} {kind.__name__}"
        raise SettingError(f"--{key}={value}: {key} takes {wanted} (default {default!r})") from None


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
