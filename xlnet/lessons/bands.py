"""The pieces every training sheet is made of: scalars one under the other, the gradients of a
dense layer, the SGD update of each parameter, the loss and accuracy of every step with their
chart, and the torch.optim run recorded over every band."""

from .. import ops
from ..sheet.blocks import Look

GRAD_FORMAT = "0.0000;-0.0000;0"  # a zero gradient shows as 0


def scalars(sheet, blocks_and_captions, row, col):
    """Scalars one under the other, label then value."""
    return [sheet.apply(call, name, row=row + k, col=col, caption=caption, title=title,
                        look=Look(number_format=fmt, heat=None))
            for k, (call, name, caption, fmt, title) in enumerate(blocks_and_captions)]


def dense_backward(sheet, x, weight, bias, grad, prefix, step, names, row, col, input_grad_at=None):
    """The gradients of a dense layer: of its weights and bias (placed at row, col) and, when
    ``input_grad_at`` gives (row, col), of its input. Returns the blocks by name."""
    out = {}
    out["w"] = sheet.apply(ops.LinearGradWeight(x=x, weight=weight, bias=bias, grad=grad), f"{prefix}d{names[0]}",
                           row=row, col=col,
                           caption=f"dL/d{names[0]} = SUMPRODUCT(dL/dout column, input column): a sum over the batch",
                           title=f"{step}: dL/d{names[0]}",
                           look=Look(number_format=GRAD_FORMAT))
    out["b"] = sheet.apply(ops.LinearGradBias(x=x, weight=weight, bias=bias, grad=grad), f"{prefix}d{names[1]}",
                           row=row, col=out["w"].right + 2,
                           caption=f"dL/d{names[1]} = SUM(column)",
                           title=f"{step}: dL/d{names[1]}",
                           look=Look(orient="col", number_format=GRAD_FORMAT))
    if input_grad_at:
        out["x"] = sheet.apply(ops.LinearGradInput(x=x, weight=weight, bias=bias, grad=grad), f"{prefix}d{names[2]}",
                               row=input_grad_at[0], col=input_grad_at[1],
                               caption=f"dL/d{names[2]} = MMULT(dL/dout row, {names[0]} column)",
                               title=f"{step}: dL/d{names[2]}",
                               look=Look(number_format=GRAD_FORMAT))
    return out


def updates(sheet, params, grads, lr, prefix, step, row, col):
    """new = old - lr x gradient for each parameter, left to right; returns the new blocks."""
    new = {}
    for key, param in params.items():
        new[key] = sheet.apply(ops.SgdUpdate(p=param, g=grads[key], lr=lr), f"{prefix}{key}", row=row, col=col,
                               caption=f"new {key} = {key} - lr x dL/d{key}",
                               title=f"{step}: new {key}",
                               look=Look(orient=param.orient, number_format="0.0000"))
        col = new[key].right + 2
    return new


CHART_ROWS = 16  # the training chart's height (300 pixels) in rows


def history_place(row, steps, blocks):
    """Where the history table and its chart go (right of the blocks above the bands), and the
    row the first band starts on (below all of them)."""
    col = max(b.right for b in blocks) + 3
    first_band = max(max(b.bottom for b in blocks), row + 2 + steps, row + CHART_ROWS) + 3
    return (row, col), first_band


def history(book, sheet, bands, prefix, row, col, title, what="batch"):
    """The loss and accuracy of every step, and their line chart."""
    steps = len(bands)
    for s in range(steps):
        sheet.text(row + 2 + s, col, f"step {s + 1}", "label")
    loss = sheet.apply(ops.Stack(**{f"s{s + 1}": band["loss"] for s, band in enumerate(bands)},
                                 order=[f"s{s + 1}" for s in range(steps)]),
                       f"{prefix}loss_history", row=row, col=col + 1, caption="loss",
                       title=f"{what} loss of every step",
                       look=Look(orient="col", number_format="0.0000"))
    accuracy = sheet.apply(ops.Stack(**{f"s{s + 1}": band["accuracy"] for s, band in enumerate(bands)},
                                     order=[f"s{s + 1}" for s in range(steps)]),
                           f"{prefix}accuracy_history", row=row, col=col + 2,
                           caption="accuracy", title=f"{what} accuracy of every step",
                           look=Look(orient="col", number_format="0%"))
    first = loss.tiles[0].row
    book.chart(sheet, f"{prefix}training", "line", title,
               [(f"{what} loss", loss), (f"{what} accuracy", accuracy)], row=row, col=col + 4,
               categories=[str(s + 1) for s in range(steps)], x_label="step", y_label="loss / accuracy",
               category_cells=[sheet.name, first, col, first + steps - 1, col], size=(560, 300))


def trajectory(book, op, inputs, bands, parameters, steps, title, **attrs):
    """Record the torch.optim.SGD run covering every band."""
    outputs = {}
    for s, band in enumerate(bands, start=1):
        outputs[f"loss_{s}"], outputs[f"accuracy_{s}"] = band["loss"], band["accuracy"]
        for name in parameters:
            outputs[f"{name}_{s}"] = band["new"][name]
    book.composite(op(**inputs, steps=steps, **attrs), outputs, title=title)
