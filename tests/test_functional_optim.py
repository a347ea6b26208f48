"""The optimizers a check runs (torch.optim's functional API) against torch.optim's classes, bit for
bit, and a check that no longer imports torch's compiler."""

import subprocess
import sys

import pytest
import torch

from xlnet.ops import functional_optim

from conftest import needs_libreoffice

CASES = [
    (functional_optim.SGD, torch.optim.SGD, dict(lr=0.1), ()),
    (functional_optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.9), ("momentum_buffer",)),
    (functional_optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-8), ("square_avg", "step")),
    (functional_optim.Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.9, 0.99), eps=1e-8), ("exp_avg", "exp_avg_sq", "step")),
    (functional_optim.AdamW, torch.optim.AdamW, dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
     ("exp_avg", "exp_avg_sq", "step")),
]


@pytest.mark.parametrize("ours, theirs, hyper, keys", CASES, ids=lambda c: getattr(c, "__name__", None))
def test_same_updates_and_state_as_torch_optim(ours, theirs, hyper, keys):
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(3, 2, dtype=torch.float64, generator=gen), torch.randn(4, dtype=torch.float64, generator=gen)]
    a = [torch.nn.Parameter(t.clone()) for t in start]
    b = [torch.nn.Parameter(t.clone()) for t in start]
    opt_a, opt_b = ours(a, **hyper), theirs(b, **hyper)
    for _ in range(6):
        for pa, pb in zip(a, b):
            g = torch.randn(pa.shape, dtype=torch.float64, generator=gen)
            pa.grad, pb.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
        opt_a.zero_grad()
        opt_b.zero_grad()
    for pa, pb in zip(a, b):
        assert torch.equal(pa.detach(), pb.detach())
        assert pa.grad is None
        for key in keys:
            assert torch.equal(torch.as_tensor(opt_a.state[pa][key]), torch.as_tensor(opt_b.state[pb][key])), key


@needs_libreoffice
def test_checking_every_optimizer_imports_no_compiler(built):
    # graddesc's annealed Adam is checked by torch.optim.lr_scheduler, which takes a real
    # torch.optim.Optimizer (and so the compiler); the optimizers of these books go without
    code = ("import sys, xlnet; r = xlnet.check(sys.argv[1:]); "
            "print(all(x.passed for x in r), 'torch._dynamo' in sys.modules)")
    books = [str(built[n]) for n in ("embeddings", "backprop")]
    out = subprocess.run([sys.executable, "-c", code, *books], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"], out.stdout + out.stderr
