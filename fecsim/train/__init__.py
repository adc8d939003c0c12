"""Training: labelled data and its sources, augmentation, the training loop and its losses,
distillation, evaluation, and the end of a run (finish.py). The runtime (fecsim itself) imports
nothing from here; `python train.py` and the evaluation commands of `python -m fecsim` do."""
