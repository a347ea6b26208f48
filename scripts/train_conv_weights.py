"""Train the conv lesson's default network with torch and write the weights it ships with.

    python scripts/train_conv_weights.py        # writes xlnet/lessons/conv_weights.json

The default workbook reads this file, so it is the same whatever torch is installed; any other
shape is trained when its workbook is built, with the same function.
"""

import json

from xlnet.lessons import conv, conv_training


def main():
    defaults = {o.name: o.default for o in conv.OPTIONS}
    entry = conv_training.train((8, 8), defaults)  # scikit-learn's digits are 8x8
    conv_training.WEIGHTS_FILE.write_text(json.dumps(entry) + "\n")
    print(f"wrote {conv_training.WEIGHTS_FILE.name}: held-out accuracy {entry['accuracy']:.1%} "
          f"on {entry['held_out']} digits")


if __name__ == "__main__":
    main()
