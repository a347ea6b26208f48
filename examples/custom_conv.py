"""Build a custom convolution workbook (5x5 kernels, padding 2, a 16x16 digit, 4 filters) and
check it against torch with LibreOffice.

    python examples/custom_conv.py [OUT_DIR]
"""

import sys

import xlnet

out = sys.argv[1] if len(sys.argv) > 1 else "custom"
[path] = xlnet.build(["conv"], out=out, seed=7, digit=42, size=16, kernel_size=5, padding=2,
                     filters1=4, filters2=3)
print(f"built {path}")
[report] = xlnet.check(path, engine="libreoffice")
print(report.text())
sys.exit(xlnet.exit_code([report]))
