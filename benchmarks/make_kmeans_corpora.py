"""Build the second real-text set of the k-means benchmark (issue 14): whole dictionary entries.

``make_dsir_corpus.py`` gives the first set (461k paragraphs of GCIDE, WordNet, FOLDOC, the
Devil's Dictionary and the fortunes). This one groups the same sources' *whole* entries into
documents of 1 + Poisson(0.75) consecutive entries (``make_memory_corpus.documents``), once with
seed 0 and once with seed 1: two different groupings, so ~340k distinct documents (~450
characters, the real long tail) with ids ``"g<seed>/<source>:<n>"``; no document repeats.

Output: OUT/kmeans_entries.jsonl. Needs: apt-get install dict-gcide dict-wn dict-foldoc
dict-devil fortunes. Usage: python benchmarks/make_kmeans_corpora.py [--out benchmarks/out]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from make_memory_corpus import documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "kmeans_entries.jsonl"
    tmp = path.with_suffix(".tmp")
    rows = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for seed in (0, 1):
            for ident, text in documents(seed):
                f.write(json.dumps({"id": f"g{seed}/{ident}", "text": text}) + "\n")
                rows += 1
    tmp.replace(path)
    print(f"{path}: {rows} documents, {path.stat().st_size >> 20} MiB")


if __name__ == "__main__":
    main()
