"""The attention lesson: a transformer block trained in cells, every forward and backward block
against torch, every band against an nn.Module built of nn.MultiheadAttention, nn.LayerNorm and
nn.Linear trained by torch.optim; heat maps, predicted words, exercises, options."""

import json

import numpy as np
import openpyxl
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import xlnet
from xlnet.cli import main
from xlnet.lessons import attention, attention_training
from xlnet.workbook import legibility
from conftest import (assert_every_block_checked, break_formula, check, edit, needs_gnumeric, needs_libreoffice,
                      recalculated, statuses, tensor_cell)

BACKWARD_OPS = {"cross_entropy_backward", "linear_grad_input", "linear_grad_weight", "linear_grad_bias",
                "relu_backward", "layer_norm_grad_input", "layer_norm_grad_weight", "layer_norm_grad_bias",
                "attention_grad_weights", "masked_softmax_backward", "attention_grad_q", "attention_grad_k",
                "attention_grad_v", "qkv_grad_input", "embedding_grad", "sgd_update"}
FORWARD_OPS = {"match", "embedding", "add", "row_mean", "row_var", "layer_norm_normalize", "scale_shift", "linear",
               "attention_scores", "masked_softmax", "attention_mix", "relu", "exp", "normalize",
               "cross_entropy_rows", "argmax", "word_correct", "mean"}


def _torch_run(t, steps, heads, optimizer="sgd"):
    """Train the sheet's block from the sheet's own starting values, written here with torch's
    modules (nn.MultiheadAttention, nn.LayerNorm, nn.Linear) and torch.optim; return the loss
    before each step and the parameters after it."""
    import torch
    import torch.nn.functional as F

    def tensor(name):
        return torch.tensor(np.asarray(t[name].values, dtype=np.float64))

    d = t["wq"].values.shape[0]
    tok = torch.nn.Embedding.from_pretrained(tensor("tok_emb"), freeze=False)
    pos = torch.nn.Parameter(tensor("pos_emb"))
    ln1, ln2 = torch.nn.LayerNorm(d, dtype=torch.float64), torch.nn.LayerNorm(d, dtype=torch.float64)
    mha = torch.nn.MultiheadAttention(d, heads, bias=False, batch_first=True, dtype=torch.float64)
    fc1 = torch.nn.Linear(d, t["mlp_w1"].values.shape[0], dtype=torch.float64)
    fc2 = torch.nn.Linear(t["mlp_w1"].values.shape[0], d, dtype=torch.float64)
    out = torch.nn.Linear(d, t["wout"].values.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for module, w, b in ((ln1, "ln1_w", "ln1_b"), (ln2, "ln2_w", "ln2_b"), (fc1, "mlp_w1", "mlp_b1"),
                             (fc2, "mlp_w2", "mlp_b2"), (out, "wout", "bout")):
            module.weight.copy_(tensor(w))
            module.bias.copy_(tensor(b))
        mha.in_proj_weight.copy_(torch.cat([tensor("wq"), tensor("wk"), tensor("wv")]))
        mha.out_proj.weight.copy_(tensor("wo"))
    params = [tok.weight, pos, *ln1.parameters(), *mha.parameters(), *ln2.parameters(), *fc1.parameters(),
              *fc2.parameters(), *out.parameters()]
    lr = float(t["lr"].values)
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    ids = torch.tensor(t["ids"].values).long()
    target = torch.tensor(t["target_ids"].values).long()
    T = len(ids)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    history = []
    for _ in range(steps):
        x0 = tok(ids) + pos
        h = ln1(x0)
        h1 = x0 + mha(h, h, h, attn_mask=mask, need_weights=False)[0]
        logits = out(h1 + fc2(torch.relu(fc1(ln2(h1)))))
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        w = mha.in_proj_weight.detach()
        history.append((loss.item(), {"wq": w[:d].numpy().copy(), "wo": mha.out_proj.weight.detach().numpy().copy(),
                                      "tok_emb": tok.weight.detach().numpy().copy(),
                                      "ln1_w": ln1.weight.detach().numpy().copy()}))
    return history


@needs_libreoffice
def test_libreoffice_recalc_passes_every_forward_and_backward_block(built):
    [report] = check(built["attention"], engine="libreoffice")
    assert_every_block_checked(report, built["attention"])
    checked = {b.op for b in report.blocks if b.status == "pass"}
    assert checked >= BACKWARD_OPS | FORWARD_OPS
    assert {b.op for b in report.blocks if b.status == "e2e"} == {
        "train_transformer", "scaled_dot_product_attention", "layer_norm", "softmax", "cross_entropy"}
    assert all(b.e2e_pass for b in report.blocks)


@needs_gnumeric
def test_gnumeric_recalc_passes_every_block(built):
    [report] = check(built["attention"], engine="gnumeric")
    assert_every_block_checked(report, built["attention"])


def test_the_sheet_trains_as_nn_multiheadattention_with_torch_optim(built):
    t = xlnet.load(built["attention"]).tensors
    history = _torch_run(t, 3, heads=1)
    for step, (loss, params) in enumerate(history, start=1):
        assert abs(float(t[f"s{step}_loss"].values) - loss) < 1e-12
        for name, value in params.items():
            np.testing.assert_allclose(t[f"s{step}_new_{name}"].values, value, rtol=1e-9, atol=1e-12)


def test_the_default_book_is_trained_and_predicts_most_of_the_text(built):
    t = xlnet.load(built["attention"]).tensors
    assert float(t["s1_accuracy"].values) >= 0.75
    assert list(t["tokens"].values) == ["twinkle", "twinkle", "little", "star", "how", "i", "wonder", "what"]
    assert list(t["next_words"].values) == ["twinkle", "little", "star", "how", "i", "wonder", "what", "you"]
    losses = [float(t[f"s{s}_loss"].values) for s in (1, 2, 3)]
    assert losses[-1] < losses[0]
    # the shipped weights are the default book's: building it imports no torch and needs no training
    [entry] = json.loads(attention_training.WEIGHTS_FILE.read_text())
    np.testing.assert_array_equal(t["wq"].values, np.array(entry["weights"]["wq"]))


def test_untrained_keeps_the_seeded_weights_and_predicts_little(tmp_path):
    [path] = xlnet.build(["attention"], out=tmp_path, untrained=True)
    t = xlnet.load(path).tensors
    rng = np.random.default_rng(0)
    start = attention.start_weights(20, 8, 8, 16, rng)
    np.testing.assert_array_equal(t["wq"].values, start["wq"])
    assert float(t["s1_accuracy"].values) < 0.5


def test_heat_maps_captions_and_the_predicted_words(built):
    book = openpyxl.load_workbook(built["attention"])
    ws = book["attention"]
    t = xlnet.load(built["attention"]).tensors
    weights = t["s1_h1_weights"]
    first = weights.address(0).split("!")[1]
    assert any(first in str(rng.sqref) for rng in ws.conditional_formatting), "the attention weights are a heat map"
    captions = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert any("row = position asking, column = position looked at" in c for c in captions)
    assert any(c.startswith("As built: head 1:") for c in captions)
    # the future of position 1 is blank: the causal mask
    sheet, cell = tensor_cell(built["attention"], "s1_h1_weights", 1)
    assert ws[cell].value is None
    # beside each predicted id, the predicted word, a formula the check reads through "right?"
    sheet, pred = tensor_cell(built["attention"], "s1_pred", 0)
    _, right = tensor_cell(built["attention"], "s1_correct", 0)
    word_cell = ws[pred].offset(0, 2)
    assert word_cell.value.startswith("=INDEX(") and word_cell.coordinate in ws[right].value


@needs_libreoffice
def test_editing_a_token_lr_and_a_weight_changes_every_later_step(copy_of):
    path = copy_of("attention")
    before = recalculated(path)
    changes = {}
    sheet, cell = tensor_cell(path, "tokens", 3)
    changes[(sheet, cell)] = "sky"
    sheet, cell = tensor_cell(path, "lr")
    changes[(sheet, cell)] = 0.005
    sheet, cell = tensor_cell(path, "wk", 5)
    changes[(sheet, cell)] = 0.77
    edit(path, changes)
    after = recalculated(path)
    assert after.tensors["ids"].values[3] == 19
    for name in ("s1_h1_weights", "s3_loss", "s3_new_wq", "s2_h1_dscores"):
        assert not np.allclose(np.nan_to_num(after.tensors[name].values), np.nan_to_num(before.tensors[name].values))
    [report] = check(path, engine="libreoffice")
    assert report.passed, report.text()


@needs_libreoffice
@pytest.mark.parametrize("tensor, index, old, new", [
    ("s1_h1_scores", 9, "/SQRT(", "/2/SQRT("),            # a score cell (row 2, column 2)
    ("s1_h1_weights", 17, "EXP(", "2*EXP("),              # a softmax cell (row 3, column 2)
    ("s2_h1_dscores", 18, "SUMPRODUCT(", "0.5*SUMPRODUCT("),  # a gradient cell
])
def test_a_broken_score_softmax_or_gradient_cell_fails_exactly_its_block(copy_of, tensor, index, old, new):
    break_formula(copy_of("attention"), tensor, index, old, new)


@needs_libreoffice
def test_exercises_are_graded_and_cannot_be_faked(tmp_path):
    [book] = xlnet.build(["attention"], out=tmp_path / "ex", exercise="all")
    [solved] = xlnet.build(["attention"], out=tmp_path / "full")
    names = list(attention.EXERCISES)
    [report] = check(book, engine="libreoffice")
    grades = {e["tensor"]: e for e in report.exercises}
    assert set(grades) == set(names) and not any(e["done"] for e in grades.values()), report.text()
    # the softmax of empty scores is not "done" because its blanks match the blanks of torch
    assert grades["s1_h1_weights"]["found"] == "not graded yet", grades["s1_h1_weights"]
    # typed numbers behind the formulas are not done either
    ws_solved = openpyxl.load_workbook(solved)["attention"]
    values = xlnet.load(solved).tensors
    typed, right = tmp_path / "typed.xlsx", tmp_path / "right.xlsx"
    for target, as_values in ((typed, True), (right, False)):
        wb = openpyxl.load_workbook(book)
        for name in names:
            block = values[name]
            for k in range(block.values.size):
                cell = block.address(k).split("!")[1]
                formula = ws_solved[cell].value
                if formula is not None:
                    wb["attention"][cell].value = float(block.values.flat[k]) if as_values else formula
        wb.save(target)
    [report] = check(typed, engine="libreoffice")
    assert not any(e["done"] for e in report.exercises), report.text()
    [report] = check(right, engine="libreoffice")
    assert all(e["done"] for e in report.exercises) and report.passed, report.text()


@needs_libreoffice
@settings(deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@pytest.mark.slow
@given(context=st.integers(2, 6), head_width=st.integers(1, 3), heads=st.integers(1, 2), steps=st.integers(1, 2),
       mlp=st.integers(1, 5), seed=st.integers(0, 1000), adam=st.booleans())
def test_random_shapes_train_as_torch(tmp_path, context, head_width, heads, steps, mlp, seed, adam):
    out = tmp_path / f"c{context}-w{head_width}-h{heads}-s{steps}-m{mlp}-{seed}-{adam}"
    [path] = xlnet.build(["attention"], out=out, seed=seed, context=context, width=max(2, head_width * heads), heads=heads,
                         steps=steps, mlp=mlp, untrained=True, optimizer="adam" if adam else "sgd", lr=0.05)
    assert [str(p) for p in legibility.problems(path)] == []
    [report] = check(path, engine="libreoffice")
    assert_every_block_checked(report, path)


def test_a_text_of_your_own(tmp_path):
    text = tmp_path / "poem.txt"
    text.write_text("The rain falls on the plain, and the rain falls again on the plain.\n", encoding="utf-8")
    [path] = xlnet.build(["attention"], out=tmp_path / "out", text=str(text), context=5, untrained=True, steps=1)
    t = xlnet.load(path).tensors
    assert list(t["tokens"].values) == ["the", "rain", "falls", "on", "the"]
    assert list(t["vocab"].values)[:4] == ["the", "rain", "falls", "on"]


@pytest.mark.parametrize("options, message", [
    ({"width": 6, "heads": 4}, "does not split into 4 heads"),
    ({"optimizer": "rmsprop"}, "sgd or adam"),
    ({"context": 1}, "--context"),
    ({"heads": 5}, "--heads"),
    ({"steps": 0}, "--steps"),
    ({"lr": 0.0}, "--lr"),
    ({"mlp": 65}, "--mlp"),
    ({"text": "no-such-file.txt"}, "no such file"),
    ({"context": 24, "width": 24, "heads": 4, "mlp": 64, "steps": 20}, "formulas"),
])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, capsys, options, message):
    argv = ["build", "attention", "--out", str(tmp_path / "out")]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out" / "attention.xlsx").exists()


@pytest.mark.parametrize("text, message", [
    ("one two three", "needs at least 9"),
    (" ".join(f"w{i}" for i in range(45)), "a vocabulary of 45"),
])
def test_a_text_too_short_or_too_rich_is_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    assert main(["build", "attention", "--text", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "text.txt" in err, err


def test_every_gradient_sits_under_its_forward_block_with_its_shape(built):
    t = xlnet.load(built["attention"]).tensors
    for forward, backward in (("s1_x0", "s1_dx0"), ("s1_ln1", "s1_dln1"), ("s1_q", "s1_h1_dq"), ("s1_k", "s1_h1_dk"),
                              ("s1_v", "s1_h1_dv"), ("s1_h1_scores", "s1_h1_dscores"),
                              ("s1_h1_weights", "s1_h1_dweights"), ("s1_h1_mix", "s1_dconcat"), ("s1_h1", "s1_dh1"),
                              ("s1_ln2", "s1_dln2"), ("s1_z", "s1_dz"), ("s1_r", "s1_dr"), ("s1_h2", "s1_dh2"),
                              ("s1_logits", "s1_dlogits")):
        f, b = t[forward], t[backward]
        assert f.values.shape == b.values.shape, (forward, backward)
        (fs, fc), (bs, bc) = (openpyxl.utils.cell.coordinate_from_string(x.address(0).split("!")[1]) for x in (f, b))
        assert fs == bs and bc > fc, (forward, backward)


@needs_libreoffice
def test_a_cell_that_copies_another_block_reads_none_of_its_inputs(copy_of):
    """In a built book a block's cell ends the walk of what a formula reads: K's cell written
    as =(Q's cell), which reads the same layer norm, reads none of K's inputs itself."""
    path = copy_of("attention")
    sheet, k_cell = tensor_cell(path, "s1_k", 3)
    _, q_cell = tensor_cell(path, "s1_q", 3)
    edit(path, {(sheet, k_cell): f"={q_cell}"})
    [report] = check(path, engine="libreoffice")
    assert statuses(report)["s1_k"] == "values", report.text()
    assert [b.tensor for b in report.blocks if b.status in ("fail", "values")] == ["s1_k"], report.text()
