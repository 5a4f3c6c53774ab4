"""Build the real-text corpora of the memory benchmark (100k and 1M documents, ~450 characters).

Source: the same Debian packages as ``make_dsir_corpus.py``, installed offline
(``apt-get install dict-gcide dict-wn dict-foldoc dict-jargon dict-devil fortunes``): every entry
of the GCIDE, WordNet 3.0, FOLDOC and Devil's Dictionary databases and every fortune, whole
(not split into paragraphs). Whole entries average ~260 characters, so a document is a run of
1 + Poisson(0.75) consecutive entries of one source (a dictionary page rather than a single
headword): ~170k distinct documents averaging ~450 characters, with the real long tail (the
longest entries are 20k+ characters). The source is smaller than 1M documents, so the corpora
repeat those documents (shuffled once, seeded) with distinct ids ``"<copy>/<source>:<n>"``: the 1M file holds
each real document about 6 times. Memory does not depend on whether texts repeat (nothing is
deduplicated); the DSIR target is the Jargon File (kept out of the raw corpus).

Output (not committed): ``OUT/memory_<rows>.jsonl`` for each size and ``OUT/memory_target.jsonl``.

Usage: python benchmarks/make_memory_corpus.py [--out /tmp/selectkit-memory] [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from make_dsir_corpus import RAW_DICTS, dict_entries, fortunes

EXTRA_ENTRIES = 0.75  # mean extra entries per document: 262 chars x 1.75 ~ 450 chars


def documents(seed: int = 0) -> list[tuple[str, str]]:
    """(id, text) of every distinct document, sources in a fixed order; deterministic."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str]] = []
    sources = [(name, dict_entries(name)) for name in RAW_DICTS]
    sources.append(("fortunes", fortunes()))
    for name, entries in sources:
        entries = [e.strip() for e in entries if e.strip()]
        runs = 1 + rng.poisson(EXTRA_ENTRIES, size=len(entries))
        starts = np.concatenate(([0], np.cumsum(runs)))
        for n, (a, b) in enumerate(itertools.pairwise(starts.tolist())):
            if a >= len(entries):
                break
            out.append((f"{name}:{n}", "\n\n".join(entries[a:b])))
    # shuffled (seeded) so that any prefix, the 100k corpus too, mixes the sources alike
    return [out[i] for i in rng.permutation(len(out))]


def write_corpus(path: Path, docs: list[tuple[str, str]], rows: int) -> None:
    """``rows`` documents: the distinct ones repeated in order, each copy with its own ids."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(rows):
            copy, (ident, text) = divmod(i, len(docs))[0], docs[i % len(docs)]
            f.write(json.dumps({"id": f"{copy}/{ident}", "text": text}) + "\n")
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/selectkit-memory")
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    docs = documents()
    lengths = np.array([len(t) for _, t in docs])
    print(
        f"{len(docs)} distinct documents: mean {lengths.mean():.0f} chars, median "
        f"{np.median(lengths):.0f}, p99 {np.percentile(lengths, 99):.0f}, max {lengths.max()}"
    )
    for rows in (int(s) for s in args.sizes.split(",")):
        path = out / f"memory_{rows}.jsonl"
        write_corpus(path, docs, rows)
        print(
            f"{path}: {rows} rows ({rows / len(docs):.1f} copies), {path.stat().st_size >> 20} MiB"
        )
    target = [(f"jargon:{i}", e.strip()) for i, e in enumerate(dict_entries("jargon")) if e.strip()]
    write_corpus(out / "memory_target.jsonl", target, len(target))
    print(f"{out / 'memory_target.jsonl'}: {len(target)} rows (the Jargon File)")


if __name__ == "__main__":
    main()
