"""Build the collaborative-filtering workbook from a ratings file in MovieLens format, train it
in cells, and check every epoch against nn.Embedding + autograd + torch.optim.SGD.

    python examples/movie_ratings.py [OUT_DIR] [RATINGS_CSV]

Without a file it writes a small one in the same format (userId,movieId,rating,timestamp), as
MovieLens's ratings.csv is laid out.
"""

import sys
from pathlib import Path

import numpy as np

import xlnet

out = Path(sys.argv[1] if len(sys.argv) > 1 else "movie-ratings")
if len(sys.argv) > 2:
    source = Path(sys.argv[2])
else:
    out.mkdir(parents=True, exist_ok=True)
    source = out / "ratings.csv"
    rng = np.random.default_rng(7)
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, 41):
        for movie in sorted(rng.choice(np.arange(1, 61), rng.integers(3, 25), replace=False)):
            lines.append(f"{user},{movie},{rng.integers(1, 11) / 2},{1_000_000_000 + user * 1000 + movie}")
    source.write_text("\n".join(lines) + "\n")
    print(f"wrote {source} ({len(lines) - 1} ratings)")

[path] = xlnet.build(["embeddings"], out=out, ratings=str(source), users=12, movies=12, epochs=8)
print(f"built {path}: the 12 most active users and the 12 most rated movies")

[report] = xlnet.check(path, engine="libreoffice")
book = xlnet.load(path)
print("loss after each epoch (cached):", np.round(book.tensors["train_loss"].values, 3))
print(report.text().splitlines()[-1])
sys.exit(xlnet.exit_code([report]))
