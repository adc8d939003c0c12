"""The FEC triplet loss, plus the pair head trained on the same features.

The app answers through the pair head (calibrated P(same expression)), so a model trained on
triplets alone would ship an untrained head. Each triplet also orders three pairs (closer = 1,
farther = 0), and those are read from the features already computed: no second forward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def triplet_loss(ea: torch.Tensor, ep: torch.Tensor, en: torch.Tensor, margin) -> torch.Tensor:
    """FECNet's loss on L2-normalised embeddings: squared distances, a margin per triplet."""
    d_pos, d_neg = (ea - ep).pow(2).sum(-1), (ea - en).pow(2).sum(-1)
    return F.relu(d_pos - d_neg + margin).mean()


def triplet_and_pair_loss(model, batch: dict, pair_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    n = len(batch["anchor"])
    z = model.features(torch.cat([batch["anchor"], batch["positive"], batch["negative"]]))
    za, zp, zn = z[:n], z[n:2 * n], z[2 * n:]
    e = F.normalize(z.float(), dim=-1)
    parts = {"triplets": triplet_loss(e[:n], e[n:2 * n], e[2 * n:], batch["margin"].float())}
    if pair_weight > 0:
        logits = model.pair_logits(torch.cat([za, za, zp]), torch.cat([zp, zn, zn])).float()
        same = torch.cat([torch.ones(n), torch.zeros(2 * n)]).to(logits.device)
        # pos_weight 2 balances one closer pair against two farther ones.
        parts["pairs"] = pair_weight * F.binary_cross_entropy_with_logits(
            logits, same, pos_weight=torch.tensor(2.0, device=logits.device))
    loss = sum(parts.values())
    return loss, {k: float(v.detach()) for k, v in parts.items()}
