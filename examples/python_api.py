"""The Python API on the bundled corpus: embed, select with kcenter and random, compare coverage."""

from pathlib import Path
from tempfile import mkdtemp

import selectkit as sk
from selectkit.demo import bundled_corpus
from selectkit.metrics import coverage

out = Path(mkdtemp())
sk.embed_file(bundled_corpus(), out / "emb.parquet")
pool = sk.load_pool([out / "emb.parquet"])
for strategy in ("kcenter", "random"):
    manifest, selection = sk.select(pool, strategy, budget=200, seed=0)
    print(strategy, coverage(pool.embeddings, selection.indices))
    sk.write_table(manifest, out / f"{strategy}.parquet")
print("manifests in", out)
