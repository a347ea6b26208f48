"""Latency of each xlnet UDF at the lesson sizes and for a 28x28 input, called the way xlwings
calls them (2-D ndarrays). Prints the median per call on the device torch picks.

    python benchmarks/bench_udfs.py [--repeat N]
"""

import argparse
import statistics
import time

import numpy as np

from xlnet import udfs


def cases(side):
    rng = np.random.default_rng(0)
    image, kernel = rng.random((side, side)), rng.normal(size=(3, 3))
    logits = rng.normal(size=(side, 10))
    targets = rng.integers(0, 10, (side, 1)).astype(float)
    weight = rng.normal(size=(10, side))
    x = np.arange(1, side + 1, dtype=float).reshape(-1, 1)
    return {
        "XLNET_CONV2D": lambda: udfs.XLNET_CONV2D(image, kernel),
        "XLNET_RELU": lambda: udfs.XLNET_RELU(image - 0.5),
        "XLNET_MAXPOOL2D": lambda: udfs.XLNET_MAXPOOL2D(image, 2),
        "XLNET_SOFTMAX": lambda: udfs.XLNET_SOFTMAX(logits),
        "XLNET_LOG_SOFTMAX": lambda: udfs.XLNET_LOG_SOFTMAX(logits),
        "XLNET_CROSS_ENTROPY": lambda: udfs.XLNET_CROSS_ENTROPY(logits, targets),
        "XLNET_SIGMOID": lambda: udfs.XLNET_SIGMOID(logits),
        "XLNET_MATMUL": lambda: udfs.XLNET_MATMUL(image, image),
        "XLNET_EMBEDDING": lambda: udfs.XLNET_EMBEDDING(targets, weight),
        "XLNET_MAXDIFF": lambda: udfs.XLNET_MAXDIFF(image, image.T),
        "XLNET_ATTENTION": lambda: udfs.XLNET_ATTENTION(image, image.T, image),
        "XLNET_SGD_TRAJECTORY": lambda: udfs.XLNET_SGD_TRAJECTORY(x, 2 * x + 30, 1, 1, 1e-4, 1),
        "XLNET_ADAM_TRAJECTORY": lambda: udfs.XLNET_ADAM_TRAJECTORY(x, 2 * x + 30, 1, 1, 0.1, 0.9, 0.999, 1e-8, 1),
        "XLNET_DEVICE": udfs.XLNET_DEVICE,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print(f"device: {udfs.XLNET_DEVICE()}")
    small, large = cases(8), cases(28)
    print(f"{'UDF':<24} {'8x8 ms':>8} {'28x28 ms':>9}")
    for name in small:
        row = []
        for table in (small, large):
            table[name]()  # warm up
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = table[name]()
                times.append(time.perf_counter() - start)
            assert not (isinstance(result, str) and result.startswith("xlnet:")), result
            row.append(statistics.median(times) * 1000)
        print(f"{name:<24} {row[0]:>8.3f} {row[1]:>9.3f}")


if __name__ == "__main__":
    main()
