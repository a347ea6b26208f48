"""Collaborative filtering in torch, the way a PyTorch user writes it: ``nn.Embedding`` tables
for the user and movie factors and biases, a forward pass over the known (user, movie) pairs,
autograd, and ``torch.optim.SGD``. The bridge checks the workbook's unrolled training against
this, epoch by epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PARAMETERS = ("user", "movie", "user_bias", "movie_bias")


def _table(weight):
    """An nn.Embedding holding ``weight`` (rows are ids), trainable."""
    table = nn.Embedding(weight.shape[0], weight.shape[1], dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        table.weight.copy_(weight)
    return table


def train(ratings, user, movie, user_bias, movie_bias, low, high, lr, epochs):
    """Full-batch SGD on pred = low + (high - low) * sigmoid(user . movie + biases).

    Args:
        ratings: (users, movies), NaN where not rated.
        user: (users, factors); movie: (factors, movies), as the workbook lays them out.
        user_bias: (users,); movie_bias: (movies,).
        low, high: the sigmoid range; lr: the learning rate; epochs: the number of steps.

    Returns:
        A dict of tensors stacked over epochs 0..epochs (the gradients and dz over 0..epochs-1):
        user, movie, user_bias, movie_bias (before each step), pred and error (NaN where not
        rated), loss, dz (dL/dz; 0 where not rated) and grad_user, grad_movie, grad_user_bias,
        grad_movie_bias, in the workbook's shapes.
    """
    known = ~torch.isnan(ratings)
    rows, cols = known.nonzero(as_tuple=True)
    target = ratings[rows, cols]
    tables = {"user": _table(user), "movie": _table(movie.T),
              "user_bias": _table(user_bias[:, None]), "movie_bias": _table(movie_bias[:, None])}
    optimizer = torch.optim.SGD([t.weight for t in tables.values()], lr=float(lr))

    def grid(values, fill):
        out = torch.full_like(ratings, fill)
        out[rows, cols] = values
        return out

    def as_laid_out(name, weight):
        return weight.T if name == "movie" else weight[:, 0] if name.endswith("bias") else weight

    record = {k: [] for k in PARAMETERS + ("pred", "error", "loss", "dz") + tuple(f"grad_{p}" for p in PARAMETERS)}
    with torch.enable_grad():
        for epoch in range(int(epochs) + 1):
            optimizer.zero_grad()
            for name, table in tables.items():
                record[name].append(as_laid_out(name, table.weight.detach().clone()))
            z = ((tables["user"](rows) * tables["movie"](cols)).sum(dim=1)
                 + tables["user_bias"](rows)[:, 0] + tables["movie_bias"](cols)[:, 0])
            z.retain_grad()
            pred = low + (high - low) * torch.sigmoid(z)
            loss = F.mse_loss(pred, target)
            record["pred"].append(grid(pred.detach(), torch.nan))
            record["error"].append(grid((pred - target).detach(), torch.nan))
            record["loss"].append(loss.detach())
            if epoch == int(epochs):
                break
            loss.backward()
            record["dz"].append(grid(z.grad, 0.0))
            for name, table in tables.items():
                record[f"grad_{name}"].append(as_laid_out(name, table.weight.grad.clone()))
            optimizer.step()
    return {k: torch.stack(v) for k, v in record.items() if v}
