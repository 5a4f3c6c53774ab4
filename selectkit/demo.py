"""The whole pipeline on the bundled real corpus: embed, select two ways, compare, apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from selectkit import arguments
from selectkit.apply import apply_manifest
from selectkit.embed import embed_file
from selectkit.errors import SelectkitDataError, option
from selectkit.metrics import coverage
from selectkit.pool import load_pool
from selectkit.select import select_files

CORPUS = "rotten_tomatoes.jsonl"


def bundled_corpus(name: str = CORPUS) -> Path:
    """Path of a bundled sample corpus: inside the installed package, else the repo's data_samples/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / name, here.parent / "data_samples" / name):
        if candidate.is_file():
            return candidate
    raise SelectkitDataError(
        f"bundled corpus {name!r} not found; pass {option('corpus', 'PATH', python='corpus=PATH')}"
    )


def run_demo(
    out_dir: str | Path = "selectkit-demo",
    *,
    corpus: str | Path | None = None,
    budget: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Embed the corpus, select ``budget`` rows by kcenter and by random, apply the kcenter pick.

    Writes emb.parquet, kcenter.parquet, random.parquet, subset.jsonl and report.html (both
    selections against the pool, viewable offline in a browser) into ``out_dir`` and
    returns a summary: timings, coverage of the pool by each selection (mean/max distance of every
    row to its nearest pick) and the label mix of each.
    """
    out = Path(arguments.path(out_dir, "out_dir"))
    corpus = arguments.optional_path(corpus, "corpus")
    arguments.integer(budget, "budget", min=1)
    arguments.integer(seed, "seed", min=0)
    out.mkdir(parents=True, exist_ok=True)
    corpus = Path(corpus) if corpus else bundled_corpus()
    emb = out / "emb.parquet"
    embed_prov = embed_file(corpus, emb)
    runs: dict[str, Any] = {}
    pool = load_pool([emb])
    labels = pl.read_ndjson(corpus).select("id", "label") if _has_label(corpus) else None
    for strategy in ("kcenter", "random"):
        manifest = out / f"{strategy}.parquet"
        prov = select_files([emb], manifest, strategy=strategy, budget=budget, seed=seed)
        picked = pl.read_parquet(manifest)
        idx = pool.frame.with_row_index("__i").join(picked, on="id").get_column("__i").to_numpy()
        summary = {
            "seconds": round(prov.timings["select_s"], 3),
            **{k: round(v, 4) for k, v in coverage(pool.embeddings, idx).items()},
        }
        if labels is not None:
            mix = picked.join(labels, on="id").get_column("label").value_counts(sort=True)
            summary["labels"] = dict(zip(*mix.to_dict(as_series=False).values(), strict=True))
        runs[strategy] = summary
    subset = out / "subset.jsonl"
    apply_manifest(out / "kcenter.parquet", corpus, subset)
    from selectkit.report import write_report

    report = out / "report.html"  # both selections side by side, texts on hover
    write_report([out / "kcenter.parquet", out / "random.parquet", emb, corpus], report, seed=seed)
    return {
        "corpus": str(corpus),
        "rows": embed_prov.metrics["rows"],
        "embed_seconds": round(embed_prov.timings["embed_s"] + embed_prov.timings["fit_s"], 3),
        "budget": budget,
        "seed": seed,
        "selections": runs,
        "outputs": {
            "embeddings": str(emb),
            "kcenter": str(out / "kcenter.parquet"),
            "random": str(out / "random.parquet"),
            "subset": str(subset),
            "report": str(report),
        },
    }


def _has_label(corpus: Path) -> bool:
    return (
        corpus.suffix in (".jsonl", ".ndjson")
        and "label" in pl.read_ndjson(corpus, n_rows=1).columns
    )
