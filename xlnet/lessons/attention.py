"""Lesson ``attention``: a transformer block a learner can read, trained in cells, every block
equal to torch.

Sheet ``attention``: a short public-domain text as words, a context of T of them, and the next
word as the target of each position. Token embeddings looked up with ``MATCH``/``INDEX`` plus
position embeddings; layer norm written out (mean, variance, normalise, scale and shift); Q, K
and V; per head the scores ``q·k/√d`` under the causal mask, their softmax (a heat map: the
position asking down, the positions it looks at across), and the weighted sum of the values;
the heads side by side, the output projection and the residual; a second layer norm, a ReLU MLP
and its residual; the logits over the vocabulary, their softmax, each position's cross-entropy,
the loss and the accuracy, and the words the block predicts beside the true ones. Under every
forward block, its gradient; then the update (SGD or Adam), step after step down the sheet, and
a chart of the loss and accuracy per step.

Every block is checked against torch on the sheet's own inputs (``F.layer_norm``, ``F.linear``,
``F.softmax``, ``F.scaled_dot_product_attention``, autograd of the same for the gradients), and
the whole run end to end against an ``nn.Module`` built of ``nn.MultiheadAttention``,
``nn.LayerNorm`` and ``nn.Linear`` trained by ``torch.optim``.
"""

import re
from pathlib import Path

import numpy as np

from .. import ops
from ..errors import InputError, option
from ..ops.transformer import PARAMETERS
from ..sheet.blocks import Look
from ..sheet.book import Book
from .bands import CHART_ROWS, GRAD_FORMAT, history, scalars
from .options import Option

NAME = "attention"
DESCRIPTION = ("a transformer block trained in cells: embeddings, layer norm, causal attention (heat maps), "
               "an MLP, the loss, every gradient and SGD or Adam steps; against F.scaled_dot_product_attention, "
               "autograd and nn.MultiheadAttention trained by torch.optim")

# Jane Taylor's "The Star" (1806), its first stanza and the refrain: in the public domain, known
# to nearly every learner, and repetitive, so that attention has something to look back at
# ("twinkle" is followed by "twinkle" once and by "little" once: only the word before it tells).
TEXT = ("Twinkle, twinkle, little star, How I wonder what you are! Up above the world so high, Like a diamond in "
        "the sky. Twinkle, twinkle, little star, How I wonder what you are!")
TEXT_SOURCE = 'Jane Taylor, "The Star" (1806), in the public domain'

OPTIONS = [
    Option("context", int, 8, "attention: tokens in the context (T)", 2, 24),
    Option("width", int, 8, "attention: model width (the size of each token's vector)", 2, 24),
    Option("heads", int, 1, "attention: attention heads (the width must split evenly into them)", 1, 4),
    Option("mlp", int, 16, "attention: hidden units of the MLP", 1, 64),
    Option("steps", int, 3, "attention: training steps unrolled down the sheet", 1, 20),
    Option("lr", float, 0.002, "attention: learning rate", 0, 100, low_open=True),
    Option("optimizer", str, "sgd", "attention: sgd or adam"),
    Option("text", str, None, "attention: a UTF-8 text file of your own (its words are the tokens)",
           shown_default="Jane Taylor's \"The Star\"", data_file=True),
    Option("untrained", bool, False, "attention: keep the seeded random weights instead of trained ones"),
]

# The blocks `--exercise all` leaves for the learner, with the instruction each caption gives.
EXERCISES = {
    "s1_h1_scores": "fill the scores of step 1: SUMPRODUCT(q row i, k row j)/SQRT(d) for j up to i; leave the "
                    "future blank; the first cell is done for you",
    "s1_h1_weights": "fill the softmax of each row over the positions it sees: EXP(s - MAX(seen))/the sum of those "
                     "EXPs; the first cell is done for you",
    "s1_h1_mix": "fill each output: the attention weights of row i times the column of v, MMULT over the positions "
                 "row i sees; the first cell is done for you",
}

MAX_FORMULAS = 400_000  # what LibreOffice recalculates in about a minute on a laptop
MAX_VOCABULARY = 40
BETAS = (0.9, 0.999)
EPS = 1e-8
ACT = "0.00"


def text_tokens(options):
    """The text's words (lower case; letters, digits, apostrophes) and its vocabulary in order
    of first use."""
    path = options["text"]
    if path is None:
        text, where = TEXT, "the lesson's text"
    else:
        where = f"{option('text')} {path}"
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise InputError(f"{where}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{where}: cannot be read as UTF-8 text ({exc.__class__.__name__})") from None
    tokens = re.findall(r"[a-z0-9']+", text.lower())
    vocab = list(dict.fromkeys(tokens))
    if len(tokens) < options["context"] + 1:
        raise InputError(f"{where}: {len(tokens)} words, but a context of {options['context']} needs at least "
                         f"{options['context'] + 1} (each position predicts the next word)")
    if not 2 <= len(vocab) <= MAX_VOCABULARY:
        raise InputError(f"{where}: a vocabulary of {len(vocab)} different words; the sheet holds 2 to "
                         f"{MAX_VOCABULARY}")
    return tokens, vocab, where


def _check(options):
    if options["optimizer"] not in ("sgd", "adam"):
        raise InputError(f"{option('optimizer')} {options['optimizer']!r}: attention expects sgd or adam")
    if options["width"] % options["heads"]:
        raise InputError(f"{option('width')} {options['width']} does not split into {options['heads']} heads: "
                         f"make the width a multiple of {option('heads')}")


def _formula_count(T, d, V, m, H, options):
    """About how many formulas the workbook holds (to refuse settings that make it unusable)."""
    forward = 12 * T * d + 2 * T * m + 4 * T * V + H * 2 * T * T + 8 * T
    backward = 10 * T * d + 2 * T * m + T * V + H * 2 * T * T
    params = 2 * V * d + T * d + 4 * d * d + 2 * d * m + 6 * d + m + V
    per_param = 3 if options["optimizer"] == "adam" else 1
    return options["steps"] * (forward + backward + params * (1 + per_param))


def start_weights(V, T, d, m, rng):
    """The seeded starting weights, rounded to two decimals (what ``--untrained`` shows)."""
    def normal(scale, *shape):
        return np.round(rng.normal(0, scale, shape), 2) + 0.0

    return {"tok_emb": normal(1.0, V, d), "pos_emb": normal(0.5, T, d), "ln1_w": np.ones(d), "ln1_b": np.zeros(d),
            "wq": normal(d ** -0.5, d, d), "wk": normal(d ** -0.5, d, d), "wv": normal(d ** -0.5, d, d),
            "wo": normal(d ** -0.5, d, d), "ln2_w": np.ones(d), "ln2_b": np.zeros(d),
            "mlp_w1": normal((2 / d) ** 0.5, m, d), "mlp_b1": np.zeros(m), "mlp_w2": normal(m ** -0.5, d, m), "mlp_b2": np.zeros(d),
            "wout": normal(d ** -0.5, V, d), "bout": np.zeros(V)}


def build(path, seed=0, exercises=None, worth=None, **options):
    """Build the attention workbook at ``path``."""
    _check(options)
    tokens, vocab, where = text_tokens(options)
    T, d, H, m = options["context"], options["width"], options["heads"], options["mlp"]
    V = len(vocab)
    count = _formula_count(T, d, V, m, H, options)
    if count > MAX_FORMULAS:
        raise InputError(f"these settings make about {count:,} formulas; keep it under {MAX_FORMULAS:,} "
                         f"(fewer {option('steps')}, a smaller {option('context')}, {option('width')} or {option('mlp')})")
    rng = np.random.default_rng(seed)
    weights = start_weights(V, T, d, m, rng)
    if not options["untrained"]:
        from .attention_training import weights_for
        weights = weights_for(tokens, vocab, options, seed, weights)
    book = Book(NAME, dict(options, seed=seed), exercises=exercises, worth=worth)
    book.start_here(
        "attention, trained in cells",
        "A transformer block, every number of it: words become vectors, each position asks the earlier ones what "
        "matters (attention), an MLP thinks it over, and the block guesses the next word; then every gradient, from "
        "the loss back to the embeddings, and the weights updated, step after step down the sheet.",
        ["Look at the attention heat maps: each row is a position asking, each column a position it looks at; the "
         "future is blank.",
         "Type another word of the vocabulary into the text (blue, near the top): the predicted words change.",
         "Change the learning rate (yellow) and watch the loss chart."],
        ["token", "embedding", "position", "layer norm", "query", "key", "value", "attention", "causal mask",
         "softmax", "residual", "MLP", "logit", "cross-entropy", "gradient", "learning rate", "step"])
    _sheet(book, tokens[:T + 1], vocab, weights, options, where)
    book.save(path)


class _Sheet:
    """The attention sheet being written: its shape, its inputs, its hyper-parameters."""

    def __init__(self, book, words, vocab, options):
        self.book = book
        self.T, self.d, self.H, self.m = options["context"], options["width"], options["heads"], options["mlp"]
        self.V = len(vocab)
        self.dh = self.d // self.H
        self.words, self.vocab = words, vocab
        self.adam = options["optimizer"] == "adam"
        self.strip = self.T + 4  # a row of [T, ...] blocks: caption, labels, T rows, a gap

    def labels(self, block):
        """The words of the positions beside a strip of [T, ...] blocks (column A)."""
        first = block.tiles[0].row
        for i in range(self.T):
            self.sheet.text(first + i, 0, f"{i + 1} {self.words[i]}", "label")


def _sheet(book, words, vocab, start, options, where):
    s = _Sheet(book, words, vocab, options)
    T, d, V, m, H = s.T, s.d, s.V, s.m, s.H
    steps = options["steps"]
    trained = "seeded random weights (--untrained)" if options["untrained"] else "weights trained on the text"
    sheet = s.sheet = book.sheet(
        "attention", "Attention, trained in cells: a transformer block",
        f"{T} words of a text, each predicting the next: embeddings + positions -> layer norm -> {H} attention "
        f"head{'s' if H > 1 else ''} (causal) -> output projection + residual -> layer norm -> ReLU MLP + residual -> "
        f"logits over {V} words -> softmax -> cross-entropy. Then every gradient, and {steps} "
        f"{'Adam' if s.adam else 'SGD'} step{'s' if steps > 1 else ''} down the sheet. It starts from {trained}.",
        col_width=5.6, label_width=11)
    text_note = TEXT_SOURCE if options["text"] is None else f"a text of your own ({where})"
    sheet.text(2, 0, f"Text: {text_note}: \"{' '.join(words)}\". Each step is a band: forward blocks, each "
               "gradient block under its forward block (same shape), then the update. Blue cells are inputs you "
               "may edit.")
    hyper = {"lr": sheet.place("lr", (), row=4, col=1, role="hyper", values=options["lr"], caption="lr",
                               allowed=(0, None, True, False, "Learning rate"), look=Look(number_format="0.000"))}
    if s.adam:
        for k, (key, value, fmt) in enumerate((("beta1", BETAS[0], "0.000"), ("beta2", BETAS[1], "0.000"),
                                               ("eps", EPS, "0.0E+00"))):
            hyper[key] = sheet.place(key, (), row=4, col=4 + 3 * k, role="hyper", values=value, caption=key,
                                     allowed=(0, 1, key == "eps", True, f"Adam's {key}"),
                                     look=Look(number_format=fmt))
    sheet.text(4, 13 if s.adam else 4,
               f"{'Adam' if s.adam else 'SGD'}: new = old - lr x {'corrected m / (SQRT(corrected v) + eps)' if s.adam else 'gradient'}."
               f"  Set when built: xlnet build attention --context {T} --width {d} --heads {H} --mlp {m} --steps {steps}.")
    top = 6
    text = _text_blocks(s, top)
    params = _parameters(s, max(text["bottom"], top + CHART_ROWS) + 2, start)
    history_at = (top, text["vocab"].right + 2)
    row = params["bottom"] + 3
    first = dict(params["blocks"])
    current, state, bands = first, {}, []
    for step in range(1, steps + 1):
        band = _band(s, text, current, state, hyper, step, row)
        bands.append(band)
        current, state = band["new"], band["state"]
        row = band["bottom"] + 3
    history(book, sheet, bands, "", history_at[0], history_at[1], "Loss and accuracy on the text per step",
            what="text")
    inputs = {"ids": text["ids"], "target": text["target_ids"], "lr": hyper["lr"], **first}
    if s.adam:
        inputs.update(beta1=hyper["beta1"], beta2=hyper["beta2"], eps=hyper["eps"])
    outputs = {}
    for k, band in enumerate(bands, start=1):
        outputs[f"loss_{k}"], outputs[f"accuracy_{k}"] = band["loss"], band["accuracy"]
        for name in PARAMETERS:
            outputs[f"{name}_{k}"] = band["new"][name]
    book.composite(ops.TrainTransformer(**inputs, steps=steps, heads=H, optimizer=options["optimizer"]), outputs,
                   title=f"nn.MultiheadAttention block trained by torch.optim.{'Adam' if s.adam else 'SGD'}")
    sheet.footer("Checked against PyTorch: F.layer_norm, F.linear, F.scaled_dot_product_attention, F.softmax, "
                 "F.cross_entropy, autograd of each for the gradients, and an nn.Module with nn.MultiheadAttention "
                 "trained by torch.optim.")


def _text_blocks(s, top):
    """The words of the context, their ids, the next words and their ids."""
    sheet, T = s.sheet, s.T
    tokens = sheet.place("tokens", (T,), row=top, col=1, role="input", values=np.array(s.words[:T]),
                         caption="text", look=Look(orient="col", heat=None))
    vocab = sheet.place("vocab", (s.V,), row=top, col=7, role="input", values=np.array(s.vocab),
                        caption="vocabulary", look=Look(orient="col", heat=None))
    ids = sheet.apply(ops.Match(values=tokens, ids=vocab, base=0), "ids", row=top, col=2, caption="id",
                      title="token id = MATCH(word, vocabulary) - 1", look=Look(orient="col", number_format="0",
                                                                                    heat=None))
    nxt = sheet.place("next_words", (T,), row=top, col=4, role="input", values=np.array(s.words[1:T + 1]),
                      caption="next word", look=Look(orient="col", heat=None))
    target = sheet.apply(ops.Match(values=nxt, ids=vocab, base=0), "target_ids", row=top, col=5, caption="id",
                         title="target id = MATCH(next word, vocabulary) - 1",
                         look=Look(orient="col", number_format="0", heat=None))
    sheet.text(top - 1, 1, "Each position's target is the word after it: the text shifted by one.")
    return {"tokens": tokens, "vocab": vocab, "ids": ids, "next": nxt, "target_ids": target,
            "bottom": max(tokens.bottom, vocab.bottom) + 1}


def _parameters(s, top, start):
    """The starting weights, in two rows: the matrices, then the vectors and the MLP."""
    sheet, T, d, V, m = s.sheet, s.T, s.d, s.V, s.m
    sheet.text(top, 0, "Starting weights", "title")
    row = top + 2

    def place(name, shape, col, caption, orient="row", r=None):
        return sheet.place(name, shape, row=row if r is None else r, col=col, role="parameter", values=start[name],
                           caption=caption, look=Look(orient=orient))

    blocks = {}
    blocks["tok_emb"] = place("tok_emb", (V, d), 2, f"token embeddings ({V} words x {d})")
    for i, word in enumerate(s.vocab):
        sheet.text(blocks["tok_emb"].tiles[0].row + i, 1, f"{i} {word}", "label")
    col = blocks["tok_emb"].right + 3
    blocks["pos_emb"] = place("pos_emb", (T, d), col, f"position embeddings ({T} x {d})")
    col = blocks["pos_emb"].right + 2
    for name, caption in (("wq", "Wq (query)"), ("wk", "Wk (key)"), ("wv", "Wv (value)"), ("wo", "Wo (output)")):
        blocks[name] = place(name, (d, d), col, caption)
        col = blocks[name].right + 2
    blocks["wout"] = place("wout", (V, d), col, f"Wout ({V} words x {d})")
    blocks["bout"] = place("bout", (V,), blocks["wout"].right + 2, "bout", orient="col")
    row = max(b.bottom for b in blocks.values()) + 2
    col = 2
    for name, caption in (("ln1_w", "layer norm 1 scale"), ("ln1_b", "layer norm 1 shift"),
                          ("ln2_w", "layer norm 2 scale"), ("ln2_b", "layer norm 2 shift")):
        blocks[name] = place(name, (d,), col, caption)
        col = blocks[name].right + 3
    row = max(blocks[n].bottom for n in ("ln1_w", "ln2_b")) + 2
    blocks["mlp_w1"] = place("mlp_w1", (m, d), 2, f"MLP W1 ({m} x {d})")
    blocks["mlp_b1"] = place("mlp_b1", (m,), blocks["mlp_w1"].right + 2, "mlp_b1", orient="col")
    blocks["mlp_w2"] = place("mlp_w2", (d, m), blocks["mlp_b1"].right + 3, f"MLP W2 ({d} x {m})")
    blocks["mlp_b2"] = place("mlp_b2", (d,), blocks["mlp_w2"].right + 2, "mlp_b2", orient="col")
    return {"blocks": blocks, "bottom": max(b.bottom for b in blocks.values())}


def _band(s, text, p, state, hyper, step, row):
    """One training step: forward, backward, update; returns its blocks."""
    sheet, T, H, dh, V = s.sheet, s.T, s.H, s.dh, s.V
    k = f"s{step}_"
    st = f"step {step}"
    source = "the starting weights above" if step == 1 else f"the weights updated at the end of step {step - 1}"
    sheet.text(row, 0, f"Step {step}", "title")
    sheet.text(row, 2, f"Forward pass from {source}; each gradient under its forward block; the update.", "intro")
    row += 2
    strip = s.strip
    rows = {"A": row, "A'": row + strip, "B": row + 2 * strip + 1, "B'": row + 3 * strip + 1}
    extra = strip if H > 1 else 0
    rows["C"] = rows["B'"] + strip + extra + 1
    rows["C'"] = rows["C"] + strip
    rows["D"] = rows["C'"] + strip + 1
    rows["D'"] = rows["D"] + max(strip, V + 4)
    f = {}

    def put(call, name, r, col, caption, title, fmt=ACT, orient="row", heat="auto"):
        block = sheet.apply(call, k + name, row=r, col=col, caption=caption, title=f"{st}: {title}",
                            look=Look(number_format=fmt, orient=orient, heat=heat))
        return block

    # ---- forward A: embeddings and layer norm 1 ----
    sheet.text(rows["A"] - 1, 1, "Embeddings and layer norm 1", "caption")
    f["tok"] = put(ops.Embedding(weight=p["tok_emb"], rows=text["ids"], base=0), "tok", rows["A"], 1,
                   "token vector = INDEX(embeddings, id + 1, j)", "token vectors (nn.Embedding)")
    s.labels(f["tok"])
    f["x0"] = put(ops.Add(a=f["tok"], b=p["pos_emb"]), "x0", rows["A"], f["tok"].right + 2,
                  "x0 = token vector + position vector", "x0 = token + position")
    ln1 = _layer_norm(s, put, f["x0"], p["ln1_w"], p["ln1_b"], "ln1", rows["A"], f["x0"].right + 2, "layer norm 1")
    f.update(ln1)
    # ---- forward B: attention ----
    sheet.text(rows["B"] - 1, 1, "Attention: each position asks the earlier ones", "caption")
    col = 1
    for name, w in (("q", "wq"), ("k", "wk"), ("v", "wv")):
        f[name] = put(ops.Linear(x=f["ln1"], weight=p[w]), name, rows["B"], col,
                      f"{name} = SUMPRODUCT(W{name} row, layer-norm row)", f"{name.upper()} = ln1 W{name}ᵀ")
        col = f[name].right + 2
    s.labels(f["q"])
    heads = []
    for h in range(1, H + 1):
        cols = slice((h - 1) * dh, h * dh)
        hk = f"h{h}_"
        sc = put(ops.AttentionScores(q=f["q"][:, cols], k=f["k"][:, cols]), hk + "scores", rows["B"], col,
                 f"head {h} scores = SUMPRODUCT(q row, k row)/SQRT({dh}); blank: the future",
                 f"head {h} scores q·k/√{dh}")
        sheet.headers(sc.top + 1, sc.left, [w for w in s.words[:T]])
        wts = put(ops.MaskedSoftmax(scores=sc), hk + "weights", rows["B"], sc.right + 2,
                  f"head {h} attention: row = position asking, column = position looked at; each row sums to 1",
                  f"head {h} attention weights (softmax of each row)", heat="auto")
        sheet.headers(wts.top + 1, wts.left, [w for w in s.words[:T]])
        mix = put(ops.AttentionMix(weights=wts, v=f["v"][:, cols]), hk + "mix", rows["B"], wts.right + 2,
                  f"head {h} output = MMULT(weights row, v column)", f"head {h} output")
        book_view = ops.ScaledDotProductAttention(q=f["q"][:, cols], k=f["k"][:, cols], v=f["v"][:, cols])
        s.book.composite(book_view, {"out": mix}, title=f"{st}: head {h} = F.scaled_dot_product_attention")
        heads.append({"scores": sc, "weights": wts, "mix": mix, "cols": cols})
        col = mix.right + 2
    if H > 1:
        f["concat"] = put(ops.Concat(**{f"h{h + 1}": x["mix"] for h, x in enumerate(heads)},
                                     order=[f"h{h + 1}" for h in range(H)]), "concat", rows["B"], col,
                          "the heads side by side", "heads concatenated")
        col = f["concat"].right + 2
    else:
        f["concat"] = heads[0]["mix"]
    f["o"] = put(ops.Linear(x=f["concat"], weight=p["wo"]), "o", rows["B"], col,
                 "o = SUMPRODUCT(Wo row, heads row)", "output projection")
    f["h1"] = put(ops.Add(a=f["x0"], b=f["o"]), "h1", rows["B"], f["o"].right + 2, "h1 = x0 + o (the residual)",
                  "h1 = x0 + attention (residual)")
    sheet.text(rows["B"] - 1, f["o"].left, _what_heads_do(s, heads), "note")
    # ---- forward C: layer norm 2, the MLP ----
    sheet.text(rows["C"] - 1, 1, "Layer norm 2 and the MLP", "caption")
    ln2 = _layer_norm(s, put, f["h1"], p["ln2_w"], p["ln2_b"], "ln2", rows["C"], 1, "layer norm 2")
    f.update(ln2)
    s.labels(f["ln2_mean"])
    f["z"] = put(ops.Linear(x=f["ln2"], weight=p["mlp_w1"], bias=p["mlp_b1"]), "z", rows["C"], f["ln2"].right + 2,
                 "z = SUMPRODUCT(W1 row, ln2 row) + b1", "MLP hidden layer")
    f["r"] = put(ops.Relu(x=f["z"]), "r", rows["C"], f["z"].right + 2, "r = MAX(0, z)", "ReLU")
    f["mlp"] = put(ops.Linear(x=f["r"], weight=p["mlp_w2"], bias=p["mlp_b2"]), "mlp", rows["C"], f["r"].right + 2,
                   "mlp = SUMPRODUCT(W2 row, r row) + b2", "MLP output")
    f["h2"] = put(ops.Add(a=f["h1"], b=f["mlp"]), "h2", rows["C"], f["mlp"].right + 2, "h2 = h1 + mlp (residual)",
                  "h2 = h1 + MLP (residual)")
    # ---- forward D: the next word ----
    sheet.text(rows["D"] - 1, 1, "The next word: logits, softmax, loss", "caption")
    head = _head(s, put, f["h2"], p, text, rows["D"], step)
    f.update(head)
    s.labels(f["logits"])
    # ---- backward, from the loss to the embeddings ----
    g = {}
    g["logits"] = put(ops.CrossEntropyBackward(p=f["probs"], target=text["target_ids"]), "dlogits", rows["D'"], 1,
                      f"dL/dlogit = (p - one-hot next word) / {T}", "dL/dlogits", fmt=GRAD_FORMAT)
    s.labels(g["logits"])
    grads_row = rows["D'"] + strip + 1
    grads, grow = _param_grad_rows(s, grads_row)
    g["h2"] = put(ops.LinearGradInput(x=f["h2"], weight=p["wout"], bias=p["bout"], grad=g["logits"]), "dh2",
                  rows["C'"], f["h2"].left, "dL/dh2 = MMULT(dL/dlogits row, Wout column)", "dL/dh2", fmt=GRAD_FORMAT)
    s.labels(g["h2"])
    g["r"] = put(ops.LinearGradInput(x=f["r"], weight=p["mlp_w2"], bias=p["mlp_b2"], grad=g["h2"]), "dr", rows["C'"],
                 f["r"].left, "dL/dr = MMULT(dL/dh2 row, W2 column): the MLP's output gradient is dL/dh2",
                 "dL/dr", fmt=GRAD_FORMAT)
    g["z"] = put(ops.ReluBackward(x=f["z"], grad=g["r"]), "dz", rows["C'"], f["z"].left,
                 "dL/dz = IF(z > 0, dL/dr, 0)", "dL/dz through ReLU", fmt=GRAD_FORMAT)
    g["ln2"] = put(ops.LinearGradInput(x=f["ln2"], weight=p["mlp_w1"], bias=p["mlp_b1"], grad=g["z"]), "dln2", rows["C'"],
                   f["ln2"].left, "dL/dln2 = MMULT(dL/dz row, W1 column)", "dL/dln2", fmt=GRAD_FORMAT)
    g["h1"] = put(ops.LayerNormGradInput(x=f["h1"], xhat=f["ln2_xhat"], var=f["ln2_var"], weight=p["ln2_w"],
                                         grad=g["ln2"], residual=g["h2"]), "dh1", rows["B'"], f["h1"].left,
                  "dL/dh1 = dL/dh2 (residual) + back through layer norm 2", "dL/dh1", fmt=GRAD_FORMAT)
    g["concat"] = put(ops.LinearGradInput(x=f["concat"], weight=p["wo"], grad=g["h1"]), "dconcat", rows["B'"],
                      f["concat"].left if H > 1 else heads[0]["mix"].left,
                      "dL/dheads = MMULT(dL/dh1 row, Wo column)", "dL/dheads", fmt=GRAD_FORMAT)
    dq, dk, dv = [], [], []
    hrow = rows["B'"] + strip
    for h, x in enumerate(heads, start=1):
        hk = f"h{h}_"
        cols = x["cols"]
        dmix = g["concat"][:, cols] if H > 1 else g["concat"]
        da = put(ops.AttentionGradWeights(grad=dmix, v=f["v"][:, cols]), hk + "dweights", rows["B'"], x["weights"].left,
                 "dL/dweight = SUMPRODUCT(dL/dout row, v row)", f"head {h} dL/dweights", fmt=GRAD_FORMAT)
        ds = put(ops.MaskedSoftmaxBackward(weights=x["weights"], grad=da), hk + "dscores", rows["B'"],
                 x["scores"].left, "dL/dscore = p (dL/dp - SUMPRODUCT(p row, dL/dp row))",
                 f"head {h} dL/dscores through softmax", fmt=GRAD_FORMAT)
        at_row, base = (rows["B'"], f["q"].left) if H == 1 else (hrow, 1 + (h - 1) * (3 * dh + 6))
        dq.append(put(ops.AttentionGradQ(grad=ds, k=f["k"][:, cols]), hk + "dq", at_row,
                      base if H > 1 else f["q"].left, "dL/dq = MMULT(dL/dscores row, k column)/SQRT(d)",
                      f"head {h} dL/dQ", fmt=GRAD_FORMAT))
        dk.append(put(ops.AttentionGradK(grad=ds, q=f["q"][:, cols]), hk + "dk", at_row,
                      dq[-1].right + 2 if H > 1 else f["k"].left,
                      "dL/dk = SUMPRODUCT(dL/dscores column, q column)/SQRT(d)", f"head {h} dL/dK", fmt=GRAD_FORMAT))
        dv.append(put(ops.AttentionGradV(weights=x["weights"], grad=dmix), hk + "dv", at_row,
                      dk[-1].right + 2 if H > 1 else f["v"].left,
                      "dL/dv = SUMPRODUCT(weights column, dL/dout column)", f"head {h} dL/dV", fmt=GRAD_FORMAT))
    if H > 1:
        sheet.text(hrow - 1, 1, "Each head's gradients, then side by side under Q, K and V", "caption")
        joined = {}
        for name, parts, block in (("dq", dq, f["q"]), ("dk", dk, f["k"]), ("dv", dv, f["v"])):
            joined[name] = put(ops.Concat(**{f"h{h + 1}": x for h, x in enumerate(parts)},
                                          order=[f"h{h + 1}" for h in range(H)]), name, rows["B'"], block.left,
                               f"{name[1].upper()} gradients of the heads side by side", f"dL/d{name[1].upper()}",
                               fmt=GRAD_FORMAT)
        g["q"], g["k"], g["v"] = joined["dq"], joined["dk"], joined["dv"]
    else:
        g["q"], g["k"], g["v"] = dq[0], dk[0], dv[0]
    s.labels(g["q"])
    g["ln1"] = put(ops.QkvGradInput(x=f["ln1"], wq=p["wq"], wk=p["wk"], wv=p["wv"], dq=g["q"], dk=g["k"], dv=g["v"]),
                   "dln1", rows["A'"], f["ln1"].left,
                   "dL/dln1 = MMULT(dQ row, Wq col) + MMULT(dK row, Wk col) + MMULT(dV row, Wv col)", "dL/dln1",
                   fmt=GRAD_FORMAT)
    g["x0"] = put(ops.LayerNormGradInput(x=f["x0"], xhat=f["ln1_xhat"], var=f["ln1_var"], weight=p["ln1_w"],
                                         grad=g["ln1"], residual=g["h1"]), "dx0", rows["A'"], f["x0"].left,
                  "dL/dx0 = dL/dh1 (residual) + back through layer norm 1; = dL/dposition", "dL/dx0", fmt=GRAD_FORMAT)
    s.labels(g["x0"])
    # ---- the gradients of the weights, laid out as the weights are ----
    put_grad = _grad_placer(s, put, grads)
    dw = {}
    dw["tok_emb"] = put_grad(ops.EmbeddingGrad(weight=p["tok_emb"], ids=text["ids"], grad=g["x0"]), "tok_emb",
                             "dL/dembedding = SUMIF(ids, this id, dL/dx0 column)")
    dw["pos_emb"] = g["x0"]
    for name, x, grad in (("wq", f["ln1"], g["q"]), ("wk", f["ln1"], g["k"]), ("wv", f["ln1"], g["v"]),
                          ("wo", f["concat"], g["h1"])):
        dw[name] = put_grad(ops.LinearGradWeight(x=x, weight=p[name], grad=grad), name,
                            "SUMPRODUCT(dL/dout column, input column)")
    dw["wout"] = put_grad(ops.LinearGradWeight(x=f["h2"], weight=p["wout"], bias=p["bout"], grad=g["logits"]), "wout",
                          "SUMPRODUCT(dL/dlogits column, h2 column)")
    dw["bout"] = put_grad(ops.LinearGradBias(x=f["h2"], weight=p["wout"], bias=p["bout"], grad=g["logits"]), "bout",
                          "SUM(dL/dlogits column)", orient="col")
    for n, x, xhat, grad in (("1", f["x0"], f["ln1_xhat"], g["ln1"]), ("2", f["h1"], f["ln2_xhat"], g["ln2"])):
        dw[f"ln{n}_w"] = put_grad(ops.LayerNormGradWeight(x=x, xhat=xhat, weight=p[f"ln{n}_w"], grad=grad),
                                  f"ln{n}_w", "SUMPRODUCT(dL/dln column, xhat column)")
        dw[f"ln{n}_b"] = put_grad(ops.LayerNormGradBias(x=x, weight=p[f"ln{n}_w"], grad=grad), f"ln{n}_b",
                                  "SUM(dL/dln column)")
    dw["mlp_w1"] = put_grad(ops.LinearGradWeight(x=f["ln2"], weight=p["mlp_w1"], bias=p["mlp_b1"], grad=g["z"]), "mlp_w1",
                        "SUMPRODUCT(dL/dz column, ln2 column)")
    dw["mlp_b1"] = put_grad(ops.LinearGradBias(x=f["ln2"], weight=p["mlp_w1"], bias=p["mlp_b1"], grad=g["z"]), "mlp_b1",
                        "SUM(dL/dz column)", orient="col")
    dw["mlp_w2"] = put_grad(ops.LinearGradWeight(x=f["r"], weight=p["mlp_w2"], bias=p["mlp_b2"], grad=g["h2"]), "mlp_w2",
                        "SUMPRODUCT(dL/dh2 column, r column)")
    dw["mlp_b2"] = put_grad(ops.LinearGradBias(x=f["r"], weight=p["mlp_w2"], bias=p["mlp_b2"], grad=g["h2"]), "mlp_b2",
                        "SUM(dL/dh2 column)", orient="col")
    # ---- the update ----
    new, new_state, bottom = _update(s, put, p, dw, state, hyper, step, grow)
    return {"loss": f["loss"], "accuracy": f["accuracy"], "new": new, "state": new_state, "bottom": bottom}


def _layer_norm(s, put, x, weight, bias, name, row, col, title):
    """Layer norm written out: mean, variance, normalised, scaled and shifted; recorded also
    as one F.layer_norm."""
    out = {}
    out[f"{name}_mean"] = put(ops.RowMean(x=x), f"{name}_mean", row, col, "mean = AVERAGE(row)", f"{title}: mean",
                              orient="col", heat=None)
    out[f"{name}_var"] = put(ops.RowVar(x=x), f"{name}_var", row, col + 2, "var = VARP(row)", f"{title}: variance",
                             orient="col", heat=None)
    out[f"{name}_xhat"] = put(ops.LayerNormNormalize(x=x, mean=out[f"{name}_mean"], var=out[f"{name}_var"]),
                              f"{name}_xhat", row, col + 4, "xhat = (x - mean)/SQRT(var + 0.00001)",
                              f"{title}: normalised")
    out[name] = put(ops.ScaleShift(x=out[f"{name}_xhat"], weight=weight, bias=bias), name, row,
                    out[f"{name}_xhat"].right + 2, "xhat x scale + shift", title)
    s.book.composite(ops.LayerNorm(x=x, weight=weight, bias=bias), {"out": out[name]},
                     title=f"{out[name].name}: F.layer_norm")
    return out


def _head(s, put, h2, p, text, row, step):
    """Logits over the vocabulary, their softmax, each position's loss, the predicted word and
    whether it is the next word; the loss and the accuracy."""
    sheet, T = s.sheet, s.T
    out = {}
    out["logits"] = put(ops.Linear(x=h2, weight=p["wout"], bias=p["bout"]), "logits", row, 1,
                        "logit = SUMPRODUCT(Wout row, h2 row) + bout", "logits")
    sheet.headers(out["logits"].top + 1, out["logits"].left, list(s.vocab))
    out["exps"] = put(ops.Exp(x=out["logits"]), "exps", row, out["logits"].right + 2, "EXP(logit)", "EXP of the logits",
                      fmt="0.0E+0")
    out["probs"] = put(ops.Normalize(x=out["exps"], dim=1), "probs", row, out["exps"].right + 2,
                       "p = EXP / row SUM (softmax)", "probabilities of the next word", fmt="0.00")
    sheet.headers(out["probs"].top + 1, out["probs"].left, list(s.vocab))
    s.book.composite(ops.Softmax(x=out["logits"], dim=1), {"out": out["probs"]}, title=f"step {step}: F.softmax")
    col = out["probs"].right + 2
    out["losses"] = put(ops.CrossEntropyRows(p=out["probs"], target=text["target_ids"]), "losses", row, col,
                        "-LN(p next)", "loss of each position", fmt="0.000", orient="col")
    out["pred"] = put(ops.Argmax(x=out["probs"]), "pred", row, col + 2, "predicted id", "predicted word id",
                      fmt="0", orient="col", heat=None)
    words_col = col + 4
    sheet.widen(words_col, 9)
    first = out["pred"].tiles[0].row
    sheet.text(first - 2, words_col, "predicted", "caption")
    vocab = text["vocab"].whole(sheet.name)
    for i in range(T):
        sheet.helper(first + i, words_col, f"=INDEX({vocab},{out['pred'].ref((i,), sheet.name)}+1)",
                     s.vocab[int(out["pred"].cached[i])], out["pred"])
    out["correct"] = put(ops.WordCorrect(pred=out["pred"], vocab=text["vocab"], target=text["next"],
                                         shown=words_col - out["pred"].left), "correct", row, words_col + 1,
                         "right?", "predicted word = next word", fmt="0", orient="col", heat=None)
    loss, accuracy = scalars(sheet, [
        (ops.Mean(x=out["losses"]), f"s{step}_loss", "loss (mean)", "0.0000", f"step {step}: loss on the text"),
        (ops.Mean(x=out["correct"]), f"s{step}_accuracy", "accuracy", "0%", f"step {step}: accuracy on the text"),
    ], row=row, col=words_col + 5)
    out["loss"], out["accuracy"] = loss, accuracy
    s.book.composite(ops.CrossEntropy(x=out["logits"], target=text["target_ids"]), {"out": loss},
                     title=f"step {step}: F.cross_entropy")
    return out


# the weights in the order the starting weights show them, each with the strip it goes in: 0 the
# matrices, 1 the layer norms and the MLP (the position embeddings' gradient is dL/dx0 itself)
_LAYOUT = [("tok_emb", 0), ("wq", 0), ("wk", 0), ("wv", 0), ("wo", 0), ("wout", 0), ("bout", 0),
           ("ln1_w", 1), ("ln1_b", 1), ("ln2_w", 1), ("ln2_b", 1), ("mlp_w1", 1), ("mlp_b1", 1), ("mlp_w2", 1), ("mlp_b2", 1)]


def _param_grad_rows(s, row):
    """The rows the gradients of the weights go in (two), and the row below them."""
    tall = max(s.V, s.d) + 4
    second = max(s.m, s.d, 1) + 4
    return {"rows": (row, row + tall), "cols": [1, 1]}, row + tall + second + 1


def _grad_placer(s, put, grads):
    def place(call, name, caption, orient="row"):
        which = dict(_LAYOUT)[name]
        row, col = grads["rows"][which], grads["cols"][which]
        block = put(call, f"d{name}", row, col, f"dL/d{name} = {caption}", f"dL/d{name}", fmt=GRAD_FORMAT,
                    orient=orient)
        grads["cols"][which] = block.right + 3
        return block
    return place


def _update(s, put, p, dw, state, hyper, step, row):
    """new = old - lr x gradient (SGD), or Adam's moments and step, for every weight; returns
    the new weights, Adam's state and the last row used."""
    sheet = s.sheet
    strip = dict(_LAYOUT, pos_emb=0)
    order = ["tok_emb", "pos_emb"] + [name for name, _ in _LAYOUT[1:]]
    lines = (("m", "Adam m: beta1 x previous m + (1 - beta1) x gradient"),
             ("v", "Adam v: beta2 x previous v + (1 - beta2) x gradient^2"),
             ("new", "new weights")) if s.adam else (("new", "new weights: old - lr x gradient"),)
    new, new_state, bottom = {}, {}, row
    for what, title in lines:
        sheet.text(row, 1, f"Step {step}: {title}", "caption")
        row += 1
        cols, top, tallest = [1, 1], row, [0, 0]
        second = row + max(s.V, s.T, s.d) + 4
        for name in order:
            which = strip[name]
            r = top if which == 0 else second
            orient = p[name].orient
            if what == "new":
                if s.adam:
                    call = ops.AdamStep(p=p[name], m=new_state[f"m_{name}"], v=new_state[f"v_{name}"], lr=hyper["lr"],
                                        beta1=hyper["beta1"], beta2=hyper["beta2"], eps=hyper["eps"], t=step)
                    caption = f"new {name} = {name} - lr m^ / (SQRT(v^) + eps)"
                else:
                    call = ops.SgdUpdate(p=p[name], g=dw[name], lr=hyper["lr"])
                    caption = f"new {name} = {name} - lr x dL/d{name}"
                block = put(call, f"new_{name}", r, cols[which], caption, f"new {name}", fmt="0.0000", orient=orient)
                new[name] = block
            else:
                beta = hyper["beta1" if what == "m" else "beta2"]
                previous = {"previous": state[f"{what}_{name}"]} if state else {}
                call = ops.AdamMoment(g=dw[name], beta=beta, square=what == "v", **previous)
                block = put(call, f"{what}_{name}", r, cols[which], f"{what} of {name}", f"Adam {what} of {name}",
                            fmt=GRAD_FORMAT, orient=orient)
                new_state[f"{what}_{name}"] = block
            cols[which] = block.right + 3
            tallest[which] = max(tallest[which], block.bottom)
        row = max(tallest) + 2
        bottom = row
    return new, new_state, bottom


def _what_heads_do(s, heads):
    """A caption saying, from the values the sheet was built with, where each head looks."""
    parts = []
    for h, x in enumerate(heads, start=1):
        w = np.nan_to_num(np.asarray(x["weights"].cached, dtype=float), nan=-1.0)
        top = w.argmax(axis=1)[1:]
        rows = np.arange(1, s.T)
        previous, itself, first = int((top == rows - 1).sum()), int((top == rows).sum()), int((top == 0).sum())
        most = max((previous, "the word before it"), (itself, "itself"), (first, "the first word"))
        parts.append(f"head {h}: {most[0]} of {s.T - 1} positions look most at {most[1]}")
    return "As built: " + "; ".join(parts) + "."
