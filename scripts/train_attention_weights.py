"""Train the attention lesson's default block, whose weights ship with xlnet, and write them.

    python scripts/train_attention_weights.py   # writes xlnet/lessons/attention_weights.json

The default workbook reads this file, so it is the same whatever torch is installed; any other
text, shape or seed is trained when its workbook is first built, with the same function.
"""

import json

import numpy as np

from xlnet.lessons import attention, attention_training


def main():
    options = {o.name: o.default for o in attention.OPTIONS}
    seed = 0
    tokens, vocab, _ = attention.text_tokens(options)
    T, d, m = options["context"], options["width"], options["mlp"]
    start = attention.start_weights(len(vocab), T, d, m, np.random.default_rng(seed))
    entry = attention_training.train(tokens, vocab, options, seed, start)
    attention_training.WEIGHTS_FILE.write_text(json.dumps([entry]) + "\n")
    print(f"{entry['shape']}: {entry['how']}")
    print(f"wrote {attention_training.WEIGHTS_FILE.name}")


if __name__ == "__main__":
    main()
