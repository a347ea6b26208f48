"""Trained weights for the attention lesson: the sheet's transformer block (``ops.transformer``)
trained by torch on every window of the lesson's text, so that the sheet predicts most of it.

Training is deterministic: the seeded starting weights the sheet would show untrained, then
``torch.optim.AdamW`` (weight decay on the MLP and the output layer only) on every window of T tokens at once (full batch, float64, one thread, a
fixed number of steps). The weights are rounded to two decimals, as the sheet shows them. The
default shape's weights ship in ``attention_weights.json`` (made by
``scripts/train_attention_weights.py``), so the default workbook is the same whatever torch is
installed and building it imports no torch; other shapes are trained when first built and kept
in the user's cache folder (see ``trained``).
"""

import hashlib
from pathlib import Path

import numpy as np

from . import trained

WEIGHTS_FILE = Path(__file__).with_name("attention_weights.json")
STEPS = 300
LR = 0.01
WEIGHT_DECAY = 1.0  # on the MLP and the output layer: the logits stay moderate (about 15), so that the
DECAYED = ("fc", "out.")  # gradients show, while attention stays free to look sharply
ROUND = 2


def shape_key(tokens, options, seed):
    """What trained weights depend on: the text, the block's shape and the seed."""
    text = hashlib.sha256(" ".join(tokens).encode()).hexdigest()[:16]
    return {"text": text, "context": options["context"], "width": options["width"], "heads": options["heads"],
            "mlp": options["mlp"], "seed": seed, "steps": STEPS, "lr": LR,
            "weight_decay": WEIGHT_DECAY, "decayed": list(DECAYED)}


def weights_for(tokens, vocab, options, seed, start):
    """The trained, rounded weights for this text and shape (a dict of arrays, as ``start``):
    the shipped file's, else the cache's, else trained now and cached."""
    entry = trained.entry_for(shape_key(tokens, options, seed), WEIGHTS_FILE, "attention-weights",
                              lambda: train(tokens, vocab, options, seed, start))
    return {k: np.asarray(v, dtype=np.float64) for k, v in entry["weights"].items()}


def windows(tokens, vocab, context):
    """Every window of ``context`` tokens of the text, as ids, and the next token of each."""
    ids = np.array([vocab.index(t) for t in tokens])
    starts = range(len(ids) - context)
    return (np.stack([ids[s:s + context] for s in starts]), np.stack([ids[s + 1:s + context + 1] for s in starts]))


def train(tokens, vocab, options, seed, start):
    """Train the block from ``start`` on every window of the text; return a JSON-ready dict of
    the rounded weights."""
    import torch
    import torch.nn.functional as F

    from ..ops import functional_optim
    from ..ops.transformer import transformer

    x, y = (torch.tensor(a) for a in windows(tokens, vocab, options["context"]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = transformer({k: torch.tensor(v) for k, v in start.items()}, options["heads"])
        named = dict(model.named_parameters())
        decayed = [p for n, p in named.items() if n.startswith(DECAYED)]
        free = [p for n, p in named.items() if not n.startswith(DECAYED)]
        optimizers = [functional_optim.AdamW(decayed, lr=LR, weight_decay=WEIGHT_DECAY),
                      functional_optim.AdamW(free, lr=LR, weight_decay=0.0)]
        with torch.enable_grad():
            for _ in range(STEPS):
                model.zero_grad()
                logits = model(x)
                F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).backward()
                for optimizer in optimizers:
                    optimizer.step()
        weights = {k: (torch.round(v.detach(), decimals=ROUND) + 0.0).tolist()
                   for k, v in model.parameters_by_name().items()}
    finally:
        torch.set_num_threads(threads)
    return {"shape": shape_key(tokens, options, seed), "weights": weights,
            "how": f"torch.optim.AdamW, lr {LR}, weight decay {WEIGHT_DECAY} on the MLP and the output layer, "
                   f"{STEPS} full-batch steps over every window, float64, one thread"}
