"""The content of each page type as plain data (tables of strings, SVG strings, map data).

Tables are lists of rows of already formatted strings, so the template only lays them out and
every number is formatted once, with fixed precision (same inputs, same bytes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from selectkit.pool import Columns
from selectkit.report import svg
from selectkit.report.inputs import Artefact, ReportInputs
from selectkit.report.projection import map_points

#: categories drawn in a share chart (the table lists up to TABLE_CATEGORIES)
CHART_CATEGORIES = 30
TABLE_CATEGORIES = 50
#: characters of hover text for all rows that are not picks together (picks get text_chars)
TEXT_BUDGET = 2_000_000
#: characters of a value shown in a provenance cell
CELL_CHARS = 240


def short(value: Any, limit: int = CELL_CHARS) -> str:
    """A provenance value as one short line of text (JSON for lists and dicts)."""
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def provenance_rows(prov: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(key, value) rows of an artefact's provenance: what made it, then its parameters,
    inputs (with fingerprints), timings and metrics, each group sorted by key."""
    if not prov:
        return [("provenance", "none recorded (not written by selectkit)")]
    rows = [
        ("made by", f"selectkit {prov.get('selectkit_version', '?')} {prov.get('command', '?')}"),
        ("seed", short(prov.get("seed"))),
    ]
    params = dict(prov.get("params") or {})
    params.pop("columns", None)  # the column names: noise unless renamed, and in argv anyway
    for key in ("strategy", "strategy_params"):
        if key in params:
            rows.append((key, short(params.pop(key))))
    rows += [(f"params.{k}", short(v)) for k, v in sorted(params.items())]
    for i, src in enumerate(prov.get("inputs") or []):
        rows.append(
            (
                f"input[{i}]",
                f"{src.get('path')} ({src.get('rows')} rows, {src.get('fingerprint')})",
            )
        )
    for group in ("timings", "metrics"):
        rows += [(f"{group}.{k}", short(v)) for k, v in sorted((prov.get(group) or {}).items())]
    if prov.get("argv"):
        rows.append(("command line", short(" ".join(map(str, prov["argv"])), 600)))
    return rows


def _name(art: Artefact, taken: set[str]) -> str:
    prov = art.provenance or {}
    name = str((prov.get("params") or {}).get("strategy") or Path(art.path).stem)
    if name in taken:
        name = f"{name} ({Path(art.path).name})"
    taken.add(name)
    return name


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _category_keys(values: pl.Series) -> pl.Series:
    """Category values as text, nulls as '(none)': what tables and charts show."""
    return values.cast(pl.String).fill_null("(none)")


def _shares(
    role: str,
    pool_values: pl.Series | None,
    picked_values: list[pl.Series],
    names: list[str],
) -> dict[str, Any]:
    """Counts and shares of one categorical column in the pool and in each selection: a table
    (the largest categories, then 'other') and a grouped bar chart."""
    base = pool_values if pool_values is not None else pl.concat(picked_values)
    counts = _category_keys(base).value_counts(name="n")
    # largest first; ties by category text so the order never depends on the input order
    counts = counts.sort(["n", base.name], descending=[True, False])
    cats = counts.get_column(base.name).to_list()
    shown = cats[:TABLE_CATEGORIES]
    pool_n = dict(zip(cats, counts.get_column("n").to_list(), strict=True))
    pool_total = base.len()
    sel_n = []
    for v in picked_values:
        vc = _category_keys(v).value_counts(name="n")
        sel_n.append(dict(zip(vc.get_column(v.name).to_list(), vc["n"].to_list(), strict=True)))
    header = [role]
    if pool_values is not None:
        header += ["pool rows", "pool share"]
    for name in names:
        header += [f"{name} rows", f"{name} share"]
    rows = []
    for cat in shown:
        row = [str(cat)]
        if pool_values is not None:
            row += [str(pool_n[cat]), _pct(pool_n[cat] / pool_total)]
        for counts_i, v in zip(sel_n, picked_values, strict=True):
            n = counts_i.get(cat, 0)
            row += [str(n), _pct(n / max(v.len(), 1))]
        rows.append(row)
    if len(cats) > len(shown):
        rest = cats[len(shown) :]
        row = [f"other ({len(rest)} {role} values)"]
        if pool_values is not None:
            n = sum(pool_n[c] for c in rest)
            row += [str(n), _pct(n / pool_total)]
        for counts_i, v in zip(sel_n, picked_values, strict=True):
            n = sum(counts_i.get(c, 0) for c in rest)
            row += [str(n), _pct(n / max(v.len(), 1))]
        rows.append(row)
    covered = [sum(1 for c in cats if counts_i.get(c, 0) > 0) for counts_i in sel_n]
    chart_cats = cats[:CHART_CATEGORIES]
    series: dict[str, list[float]] = {}
    colours = []
    if pool_values is not None:
        series["pool"] = [pool_n[c] / pool_total for c in chart_cats]
        colours.append(svg.POOL_COLOUR)
    for i, (counts_i, v, name) in enumerate(zip(sel_n, picked_values, names, strict=True)):
        series[name] = [counts_i.get(c, 0) / max(v.len(), 1) for c in chart_cats]
        colours.append(svg.colour(i))
    more = f" (the {len(chart_cats)} largest of {len(cats)})" if len(cats) > len(chart_cats) else ""
    chart = svg.bar_chart(f"Share of rows per {role}{more}", chart_cats, series, colours)
    return {
        "role": role,
        "header": header,
        "rows": rows,
        "chart": chart,
        "coverage": [
            f"{name}: {c} of {len(cats)} {role} values picked"
            for name, c in zip(names, covered, strict=True)
        ],
    }


def selection_page(
    inputs: ReportInputs, columns: Columns, *, seed: int, max_points: int, text_chars: int
) -> dict[str, Any]:
    """The context of a selection page (one manifest) or a comparison (several)."""
    taken: set[str] = set()
    manifests = inputs.manifests
    names = [_name(m, taken) for m in manifests]
    pool = inputs.pool
    ids = pool.frame.get_column(columns.id) if pool is not None else None
    picked_rows: list[np.ndarray] = []
    if ids is not None:
        index = pl.DataFrame({columns.id: ids}).with_row_index("__row")
        for m in manifests:
            order = m.frame.sort("rank") if "rank" in m.frame.columns else m.frame
            joined = order.select(columns.id).join(index, on=columns.id, how="left")
            picked_rows.append(joined.get_column("__row").to_numpy().astype(np.int64))
    pool_rows = pool.frame.height if pool is not None else None

    counts_header = ["selection", "rows picked"]
    if pool_rows is not None:
        counts_header += ["share of pool"]
    counts_header += ["seed", "budget", "coverage mean dist", "coverage p95 dist"]
    counts = []
    for m, name in zip(manifests, names, strict=True):
        prov = m.provenance or {}
        metrics = prov.get("metrics") or {}
        row = [name, str(m.frame.height)]
        if pool_rows is not None:
            row.append(_pct(m.frame.height / max(pool_rows, 1)))
        row += [
            short(prov.get("seed", "")),
            short((prov.get("params") or {}).get("budget", "")),
            short(metrics.get("coverage_mean_distance", "")),
            short(metrics.get("coverage_p95_distance", "")),
        ]
        counts.append(row)
    overlap = None
    if len(manifests) > 1:
        sets = [set(m.frame.get_column(columns.id).to_list()) for m in manifests]
        overlap = {
            "header": ["", *names],
            "rows": [
                [a, *(f"{len(sa & sb)} ({_jaccard(sa, sb)})" for sb in sets)]
                for a, sa in zip(names, sets, strict=True)
            ],
        }

    shares = []
    for role in ("cluster", "group", "label"):
        col = columns.name(role)
        if pool is not None and col in pool.frame.columns:
            values = pool.frame.get_column(col)
            picked = [values.gather(rows) for rows in picked_rows]
            shares.append(_shares(role, values, picked, names))
        elif pool is None and all(col in m.frame.columns for m in manifests):
            shares.append(_shares(role, None, [m.frame.get_column(col) for m in manifests], names))

    histograms = []
    for column in ("score", "weight"):
        series, colours = {}, []
        for i, (m, name) in enumerate(zip(manifests, names, strict=True)):
            if column not in m.frame.columns:
                continue
            values = m.frame.get_column(column).drop_nulls().cast(pl.Float64).to_numpy()
            values = values[np.isfinite(values)]
            if values.size == 0 or (column == "weight" and np.all(values == values[0])):
                continue  # no scores, or unweighted (every weight 1.0): nothing to show
            series[name] = values
            colours.append(svg.colour(i))
        if series:
            histograms.append(
                svg.histogram(
                    f"Distribution of {column} in the selection", series, colours, x_label=column
                )
            )

    dropped = [_dropped(d, pool, columns) for d in inputs.dropped]
    dsir = [
        section
        for m, name in zip(manifests, names, strict=True)
        if (section := _dsir(m, name)) is not None
    ]

    map_data = None
    map_note = "no map: give the embeddings the selection was made from (e.g. emb.parquet)"
    if pool is not None and columns.embedding in (*pool.frame.columns, *pool.arrays):
        map_data, map_note = _map_data(
            pool, columns, picked_rows, names, seed=seed, cap=max_points, text_chars=text_chars
        )
    elif pool is not None:
        map_note = f"no map: the pool has no '{columns.embedding}' column"

    return {
        "kind": "compare" if len(manifests) > 1 else "selection",
        "names": names,
        "colours": [svg.colour(i) for i in range(len(names))],
        "pool_paths": inputs.pool_paths,
        "pool_rows": pool_rows,
        "provenance": [
            {"name": n, "path": m.path, "rows": provenance_rows(m.provenance)}
            for n, m in zip(names, manifests, strict=True)
        ],
        "counts": {"header": counts_header, "rows": counts},
        "overlap": overlap,
        "shares": shares,
        "histograms": histograms,
        "dropped": dropped,
        "dsir": dsir,
        "map": map_data,
        "map_note": map_note,
    }


def _dsir(art: Artefact, name: str) -> dict[str, Any] | None:
    """DSIR's shift towards each target, from the metrics `select` recorded: KL divergence of
    the target's hashed n-gram distribution from the pool's, a random sample's (same size) and
    the selection's (lower = closer to the target). None for other strategies."""
    metrics = (art.provenance or {}).get("metrics") or {}
    keys = ("kl_target_pool", "kl_target_random", "kl_target_selected")
    if not all(isinstance(metrics.get(k), list) for k in keys):
        return None
    n = len(metrics["kl_target_selected"])
    targets = [f"target {i}" for i in range(n)]
    header = ["target", "KL(target ‖ pool)", "KL(target ‖ random)", "KL(target ‖ selection)"]
    rows = [[t, *(f"{float(metrics[k][i]):.4f}" for k in keys)] for i, t in enumerate(targets)]
    chart = svg.bar_chart(
        f"{name}: hashed n-gram KL divergence from each target (lower = closer)",
        targets,
        {
            "pool": [float(v) for v in metrics["kl_target_pool"]],
            "random sample": [float(v) for v in metrics["kl_target_random"]],
            "selection": [float(v) for v in metrics["kl_target_selected"]],
        },
        [svg.POOL_COLOUR, svg.colour(1), svg.colour(0)],
        y_label="KL divergence",
    )
    reduction = metrics.get("kl_reduction")
    note = f"KL reduction vs a random sample: {float(reduction):.4f}" if reduction else ""
    return {"name": name, "header": header, "rows": rows, "chart": chart, "note": note}


#: near-duplicate pairs listed (the most similar first)
DROPPED_ROWS = 100


def _dropped(art: Artefact, pool, columns: Columns) -> dict[str, Any]:
    """semdedup's dropped rows beside the kept rows they duplicate, most similar first, with
    both texts when the pool has a text column."""
    frame = art.frame.sort(["similarity", columns.id], descending=[True, False])
    shown = frame.head(DROPPED_ROWS)
    texts = None
    if pool is not None and columns.text in pool.frame.columns:
        texts = pool.frame.select(
            pl.col(columns.id), pl.col(columns.text).cast(pl.String).str.slice(0, 160)
        )
    header = ["dropped id", "kept id (duplicate_of)", "similarity"]
    if texts is not None:
        header = ["dropped id", "dropped text", "kept id (duplicate_of)", "kept text", "similarity"]
        lookup = texts.rename({columns.id: "__k", columns.text: "__t"})
        shown = (
            shown.join(lookup, left_on=columns.id, right_on="__k", how="left")
            .rename({"__t": "dropped_text"})
            .join(
                lookup.rename({"__k": "__k2"}), left_on="duplicate_of", right_on="__k2", how="left"
            )
            .rename({"__t": "kept_text"})
            .sort(["similarity", columns.id], descending=[True, False])
        )
    rows = []
    for rec in shown.iter_rows(named=True):
        row = [str(rec[columns.id])]
        if texts is not None:
            row.append(rec["dropped_text"] or "")
        row.append(str(rec["duplicate_of"]))
        if texts is not None:
            row.append(rec["kept_text"] or "")
        row.append(f"{rec['similarity']:.4f}")
        rows.append(row)
    sims = frame.get_column("similarity").cast(pl.Float64).to_numpy()
    chart = (
        svg.histogram(
            "Similarity of dropped rows to the row kept", {"dropped": sims}, [svg.colour(4)],
            x_label="cosine similarity",
        )
        if sims.size
        else None
    )  # fmt: skip
    return {
        "path": art.path,
        "count": frame.height,
        "shown": len(rows),
        "header": header,
        "rows": rows,
        "chart": chart,
        "text_cols": texts is not None,
    }


def _jaccard(a: set, b: set) -> str:
    union = len(a | b)
    return f"J={len(a & b) / union:.2f}" if union else "J=0"


def _map_data(
    pool,
    columns: Columns,
    picked_rows: list[np.ndarray],
    names: list[str],
    *,
    seed: int,
    cap: int,
    text_chars: int,
) -> tuple[dict[str, Any], str]:
    ids = pool.frame.get_column(columns.id)
    picked = np.zeros(pool.frame.height, dtype=bool)
    for rows in picked_rows:
        picked[rows] = True
    points = map_points(ids, pool.embeddings, picked, cap, seed)
    position = np.full(pool.frame.height, -1, dtype=np.int64)
    position[points.rows] = np.arange(points.rows.size)
    picks = []
    for rows in picked_rows:
        shown = position[rows]
        picks.append(np.sort(shown[shown >= 0]).tolist())
    data: dict[str, Any] = {
        "xy": points.xy.reshape(-1).tolist(),
        "ids": ids.gather(points.rows).cast(pl.String).to_list(),
        "names": names,
        "colours": [svg.colour(i) for i in range(len(names))],
        "picks": picks,
    }
    if columns.text in pool.frame.columns:
        # picks show text_chars; other rows share a budget, so 50k points stay a few MB
        other_chars = min(text_chars, TEXT_BUDGET // max(points.rows.size, 1))
        limit = np.where(picked[points.rows], text_chars, other_chars)
        texts = pl.DataFrame(
            {
                "t": pool.frame.get_column(columns.text).gather(points.rows).cast(pl.String),
                "n": pl.Series(limit, dtype=pl.UInt32),
            }
        ).select(pl.col("t").str.slice(0, pl.col("n")).fill_null(""))
        data["texts"] = texts.get_column("t").to_list()
    n, total = points.rows.size, pool.frame.height
    shown = sum(len(p) for p in picks)
    all_picks = sum(len(r) for r in picked_rows)
    note = (
        f"{n:,} of {total:,} pool rows drawn (sampled by id hash with seed {seed}; picked rows "
        f"first: {shown:,} of {all_picks:,} picks shown); position = first two principal "
        "components of the drawn rows' embeddings."
    )
    if "texts" not in data:
        note += " Give the corpus (a table with a text column) to see texts on hover."
    elif other_chars < text_chars:
        note += (
            f" Hover shows {text_chars} characters of a pick's text, {other_chars} of other "
            "rows' (a 2 MB text budget)."
        )
    return data, note
