"""Build a mini-batch gradient-descent workbook, change Adam's learning rate the way a learner
would (edit the cell and save), and check that every optimizer still matches torch.optim.

    python examples/tune_learning_rate.py [OUT_DIR]
"""

import sys

import openpyxl

import xlnet

out = sys.argv[1] if len(sys.argv) > 1 else "graddesc-tuned"
[path] = xlnet.build(["graddesc"], out=out, points=12, batch_size=3, epochs=10)
print(f"built {path}")

book = xlnet.load(path)
sheet, cell = book.tensors["adam_lr"].address(0).split("!")
workbook = openpyxl.load_workbook(path)
workbook[sheet][cell] = 0.3
workbook.save(path)
print(f"set {sheet}!{cell} (Adam's learning rate) to 0.3")

[report] = xlnet.check(path, engine="libreoffice")
print(report.text().splitlines()[-1])
sys.exit(xlnet.exit_code([report]))
