"""Train the conv lesson's networks whose weights ship with xlnet, and write them.

    python scripts/train_conv_weights.py        # writes xlnet/lessons/conv_weights.json

The workbooks of those shapes (``conv_training.SHIPPED``: the default lesson, and the README's
custom example) read this file, so they are the same whatever torch is installed; any other
shape is trained when its workbook is first built, with the same function.
"""

import json

from xlnet.lessons import conv, conv_training


def main():
    defaults = {o.name: o.default for o in conv.OPTIONS}
    entries = [conv_training.train(side, {**defaults, **changed}) for side, changed in conv_training.SHIPPED]
    conv_training.WEIGHTS_FILE.write_text(json.dumps(entries) + "\n")
    for entry in entries:
        print(f"{entry['shape']}: held-out accuracy {entry['accuracy']:.1%} on {entry['held_out']} digits")
    print(f"wrote {conv_training.WEIGHTS_FILE.name}")


if __name__ == "__main__":
    main()
