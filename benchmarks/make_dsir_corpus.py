"""Build the real-text corpus for the DSIR benchmark from Debian packages installed offline.

Sources (install: apt-get install dict-gcide dict-wn dict-foldoc dict-jargon dict-devil fortunes):
dictd databases under /usr/share/dictd (GCIDE, WordNet 3.0, FOLDOC, Devil's Dictionary) and the
fortune files under /usr/share/games/fortunes. Each dictionary entry is split at blank lines into
paragraphs; every paragraph with at least one letter is a document. The Jargon File is the target
corpus (kept out of the raw corpus). Output (git-ignored) in benchmarks/out/:

- dsir_raw.jsonl: {"id": "<source>:<n>", "text": ...}, sources in a fixed order
- dsir_target.jsonl: the Jargon File's paragraphs
- with --repeat R: dsir_raw_xR_<i>.jsonl shards, R copies of the raw corpus with distinct ids
  (the memory point at 10x the corpus size repeats the same real documents)

Usage: python benchmarks/make_dsir_corpus.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

DICTD = Path("/usr/share/dictd")
FORTUNES = Path("/usr/share/games/fortunes")
OUT = Path(__file__).parent / "out"
RAW_DICTS = ("gcide", "wn", "foldoc", "devil")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_LETTER = re.compile(r"[A-Za-z]")


def _b64(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 64 + _B64.index(ch)
    return value


def dict_entries(name: str) -> list[str]:
    """Every distinct entry of a dictd database, in index order."""
    with gzip.open(DICTD / f"{name}.dict.dz") as f:
        data = f.read()
    seen, out = set(), []
    for line in (DICTD / f"{name}.index").read_text("utf-8", "replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00-database"):
            continue
        key = (_b64(parts[1]), _b64(parts[2]))
        if key in seen:
            continue
        seen.add(key)
        out.append(data[key[0] : key[0] + key[1]].decode("utf-8", "replace"))
    return out


def fortunes() -> list[str]:
    out = []
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        out.extend(t for t in text.split("\n%\n") if t.strip())
    return out


def paragraphs(texts: list[str]) -> list[str]:
    out = []
    for text in texts:
        for para in re.split(r"\n\s*\n", text):
            para = para.strip()
            if _LETTER.search(para):
                out.append(para)
    return out


def write(path: Path, source_docs: list[tuple[str, list[str]]], copy: int | None = None) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for source, docs in source_docs:
            for i, doc in enumerate(docs):
                ident = f"{source}:{i}" if copy is None else f"{copy}/{source}:{i}"
                f.write(json.dumps({"id": ident, "text": doc}) + "\n")
                n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=0, help="also write R copies as shards")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    raw = [(name, paragraphs(dict_entries(name))) for name in RAW_DICTS]
    raw.append(("fortunes", paragraphs(fortunes())))
    target = [("jargon", paragraphs(dict_entries("jargon")))]
    n_raw = write(OUT / "dsir_raw.jsonl", raw)
    n_target = write(OUT / "dsir_target.jsonl", target)
    print(f"raw: {n_raw} documents ({', '.join(f'{s} {len(d)}' for s, d in raw)})")
    print(f"target: {n_target} documents (jargon)")
    for copy in range(args.repeat):
        write(OUT / f"dsir_raw_x{args.repeat}_{copy}.jsonl", raw, copy)
    if args.repeat:
        print(f"{args.repeat} shards of {n_raw} documents: {args.repeat * n_raw} in all")


if __name__ == "__main__":
    main()
