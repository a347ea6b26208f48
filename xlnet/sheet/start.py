"""A book's first sheet, "start": what the book teaches, its sheets in order, what to edit, and
the words it uses, for a learner who opens it cold (as fast.ai's graddesc sheet opens)."""

from __future__ import annotations

# The words a lesson uses, in one place: each lesson names the ones its sheets use.
GLOSSARY = {
    "input": "a number the sheet starts from (a pixel, a rating, a data row); edit it and everything after it follows",
    "weight": "a number the network learns (a kernel, a factor, a layer's matrix); training changes it",
    "kernel": "a small grid of weights slid over an image; each output cell is the sum of the window times the kernel",
    "filter": "one kernel of a convolution layer, making one output map (the sheets count filters from 1)",
    "ReLU": "MAX(0, x): keeps a positive number, turns a negative one into 0",
    "max-pool": "the largest value of each window: a smaller map that keeps the strongest response",
    "logit": "a raw score for one class, any real number, before softmax turns the scores into probabilities",
    "softmax": "EXP(logit) / SUM(EXP(every logit)): probabilities that are positive and sum to 1",
    "temperature": "T divides the logits before softmax: small T sharpens the probabilities, large T flattens them",
    "cross-entropy": "the loss -LN(probability of the right class): 0 when sure and right, large when sure and wrong",
    "loss": "one number saying how wrong the predictions are; training makes it smaller",
    "gradient": "how much the loss changes when a number moves a little (dL/dw); a step moves w against it",
    "learning rate": "lr, how far one step moves each weight: new w = w - lr x gradient",
    "step": "one update of the weights from one batch of data",
    "epoch": "one pass over all the data rows",
    "batch": "the data rows one step averages its gradient over",
    "momentum": "a running average of past gradients, so steps keep going the way they have been going",
    "Adam": "steps scaled per weight by running averages of the gradient and of its square, bias-corrected",
    "bias": "a number added to a weighted sum, so the output need not be 0 when the inputs are",
    "embedding": "a row of learned numbers standing for an id (a user, a movie, a word)",
    "one-hot": "a row of zeros with a single 1 at an id's position; times a matrix, it picks that row",
    "sigmoid": "1 / (1 + EXP(-x)): squeezes any number into 0..1, a probability for one yes/no question",
    "backpropagation": "the chain rule applied from the loss back to every weight, layer by layer",
    "token": "one unit of the text the model reads (here a word), numbered by its place in the vocabulary",
    "position": "where a token stands in the context; a position embedding tells the model which place it is",
    "layer norm": "each row moved to mean 0 and variance 1 (VARP over its features), then scaled and shifted",
    "query": "q, what a position is looking for: its row times Wq",
    "key": "k, what a position offers to be found by: its row times Wk; a score is q . k / SQRT(d)",
    "value": "v, what a position hands on when looked at: its row times Wv",
    "attention": "each position's output is a weighted sum of the values, the weights a softmax of its scores",
    "causal mask": "a position may look only at itself and the past: the future's scores are left blank",
    "residual": "a layer's input added back to its output (x + layer(x)), so a layer only adds what it learns",
    "MLP": "a small dense network (a linear layer, ReLU, a linear layer) applied to each position alone",
}

COLORS = ("A pale blue cell with a blue border is an input or a weight: type another number and every formula "
          "after it recalculates. A yellow cell is a hyper-parameter (a learning rate, a temperature). An orange "
          "cell is yours to fill, in an exercise book. Every other number is a formula: click it to read it.")


def fill(sheet, sheets, edit, terms, check_line):
    """Write the start sheet's body under its title and introduction.

    Args:
        sheet: the Sheet (the book's first).
        sheets: the book's other Sheets, in order.
        edit: sentences on what to try editing.
        terms: words of GLOSSARY the book uses.
        check_line: how to check the book.
    """
    row = 3
    sheet.text(row, 0, "The sheets, in order", "caption")
    row += 1
    for other in sheets:
        sheet.text(row, 0, other.name, "scalar_label")
        sheet.text(row, 1, other.title)
        row += 1
    row += 1
    sheet.text(row, 0, "What to edit", "caption")
    for line in (COLORS, *edit):
        row += 1
        sheet.paragraph(row, line, "note")
    row += 2
    sheet.text(row, 0, "Words used", "caption")
    for term in terms:
        row += 1
        sheet.text(row, 0, term, "scalar_label")
        sheet.text(row, 1, GLOSSARY[term])
    row += 2
    sheet.text(row, 0, check_line, "footer")
