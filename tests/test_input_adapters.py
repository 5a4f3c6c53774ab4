"""A strategy owns its input adapter (issue 12 item 12): WIDE by default, DISCO's LONG, DSIR's
STREAMED, and any adapter a plug-in declares; the runner knows no strategy by name."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from selectkit import Pool, Selection, get_strategy, read_provenance, select, select_files
from selectkit.disco.data import LONG, ModelPool
from selectkit.strategies import register_strategy
from selectkit.strategies.base import _REGISTRY, StreamedSelection
from selectkit.strategies.dsir import STREAMED
from selectkit.strategies.inputs import (
    WIDE,
    FileInputs,
    InputAdapter,
    StreamedInput,
    StreamingAdapter,
    WideInput,
)


class TextLength(WideInput):
    """A plug-in's adapter: the wide pool with ``score`` = the length of each text."""

    name = "text-length"

    def prepare(self, pool, needs, purpose, params):
        if "score" not in pool.frame.columns:
            lengths = pool.frame.get_column(pool.columns.text).str.len_chars().cast(pl.Float64)
            pool = Pool(
                frame=pool.frame.with_columns(lengths.alias("score")),
                columns=pool.columns,
                arrays=pool.arrays,
                sources=pool.sources,
                use_labels=pool.use_labels,
                labelled_col=pool.labelled_col,
                labels_as_data=pool.labels_as_data,
            )
        return super().prepare(pool, needs, purpose, params)


def _head(files: FileInputs, budget, seed, params) -> StreamedSelection:
    """A streamed plug-in: the first ``budget`` rows of the first file, never a Pool."""
    ids = pl.read_ndjson(files.paths[0]).get_column(files.columns.id).head(int(budget))
    manifest = pl.DataFrame(
        {"id": ids, "rank": np.arange(ids.len()), "score": None, "weight": 1.0},
        schema_overrides={"score": pl.Float64},
    )
    return StreamedSelection(manifest=manifest, metrics={"streamed_rows": ids.len()})


@pytest.fixture
def plugins():
    """Two plug-in strategies with their own adapters, removed from the registry afterwards."""

    @register_strategy(
        "longest",
        summary="The longest texts.",
        needs=("score",),
        inputs=TextLength(),
        labels="data",
    )
    def longest(pool, budget, rng):
        rows = pool.candidates
        order = np.lexsort((rows, -pool.values("score")[rows]))[:budget]
        return Selection(indices=rows[order], scores=pool.values("score")[rows[order]])

    @register_strategy("head", summary="The first rows.", inputs=StreamedInput(_head))
    def head(pool, budget, rng):
        return Selection(indices=pool.candidates[:budget])

    yield
    _REGISTRY.pop("longest")
    _REGISTRY.pop("head")


def test_builtin_strategies_declare_their_adapters():
    assert get_strategy("disco").inputs is LONG
    assert get_strategy("dsir").inputs is STREAMED
    assert all(get_strategy(n).inputs is WIDE for n in ("kcenter", "ccs", "semdedup", "margin"))
    for adapter in (WIDE, LONG, STREAMED):
        assert isinstance(adapter, InputAdapter)
    assert isinstance(STREAMED, StreamingAdapter)
    assert not isinstance(WIDE, StreamingAdapter) and not isinstance(LONG, StreamingAdapter)


def test_registration_refuses_what_is_no_adapter_or_label_use():
    with pytest.raises(ValueError, match="input adapter"):
        register_strategy("bad_inputs", summary="-", inputs="long")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels must be one of"):
        register_strategy("bad_labels", summary="-", labels="labelled")
    assert "bad_inputs" not in _REGISTRY and "bad_labels" not in _REGISTRY


def test_runner_imports_no_strategy_module():
    """select.py reads no strategy's data module: resolve, load/prepare, run, check, manifest."""
    source = Path(importlib.import_module("selectkit.select").__file__).read_text()
    tree = ast.parse(source)
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if "disco" in m or "dsir" in m]
    assert "drop_incomplete" not in source and ".layout" not in source


def test_plugin_adapter_prepares_the_pool_from_files_and_memory(plugins, cli, tmp_path, rt_small):
    out = tmp_path / "m.parquet"
    r = cli("select", rt_small, "-s", "longest", "-b", "5", "-o", out)  # rt rows carry labels
    assert r.exit_code == 0, r.output
    corpus = pl.read_ndjson(rt_small)
    want = corpus.with_columns(n=pl.col("text").str.len_chars()).sort(
        ["n", "id"], descending=[True, False]
    )
    assert (
        pl.read_parquet(out).get_column("id").to_list() == want.get_column("id").head(5).to_list()
    )
    py, _ = select(Pool(frame=corpus), "longest", 5, seed=0)
    assert py.equals(pl.read_parquet(out))


def test_plugin_streaming_adapter_writes_its_manifest(plugins, cli, tmp_path, rt_small):
    out = tmp_path / "m.parquet"
    r = cli("select", rt_small, "-s", "head", "-b", "4", "-o", out)
    assert r.exit_code == 0, r.output
    ids = pl.read_ndjson(rt_small).get_column("id").head(4).to_list()
    assert pl.read_parquet(out).get_column("id").to_list() == ids
    prov = read_provenance(out)
    assert prov["metrics"] == {"streamed_rows": 4}
    assert prov["params"]["strategy"] == "head"
    # in memory the same strategy runs on a wide pool (fn), unlabelled rows only
    frame = pl.read_ndjson(rt_small).with_columns(label=pl.lit(None, dtype=pl.Int64))
    _, sel = select(Pool(frame=frame), "head", 4, seed=0)
    assert sel.indices.tolist() == [0, 1, 2, 3]


def test_long_adapter_loads_then_pivots_once(long_frame, tmp_path):
    path = tmp_path / "preds.parquet"
    long_frame.write_parquet(path)
    loaded = LONG.load(FileInputs([path]), {})
    assert len(loaded) == long_frame.height  # still one row per (model, id)
    pivoted = LONG.prepare(loaded, ("model", "proba"), "strategy 'disco'", {})
    assert isinstance(pivoted, ModelPool) and len(pivoted) == long_frame.get_column("id").n_unique()
    assert LONG.prepare(pivoted, ("model", "proba"), "strategy 'disco'", {}) is pivoted
    prov = select_files([path], tmp_path / "m.parquet", strategy="disco", budget=10)
    assert prov.metrics["pool_rows"] == len(pivoted)


def test_entry_point_plugin_with_its_own_adapter_is_listed(tmp_path):
    """An installed plug-in declares an adapter and a label use; `strategies --json` shows them
    and `select` runs it in a fresh interpreter."""
    (tmp_path / "adapter_plugin.py").write_text(
        textwrap.dedent(
            """
            import polars as pl
            from selectkit import Pool, Selection, register_strategy
            from selectkit.strategies.inputs import WideInput

            class Doubled(WideInput):
                name = "doubled"
                def prepare(self, pool, needs, purpose, params):
                    frame = pool.frame.with_columns(score=pl.col("x") * 2.0)
                    return super().prepare(Pool(frame=frame, columns=pool.columns,
                                                sources=pool.sources), needs, purpose, params)

            @register_strategy("smallest_doubled", summary="Smallest 2x.", needs=("score",),
                               inputs=Doubled(), labels="data")
            def smallest(pool, budget, rng):
                order = pool.values("score").argsort(kind="stable")[:budget]
                return Selection(indices=order, scores=pool.values("score")[order])
            """
        )
    )
    dist = tmp_path / "adapter_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: adapter-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[selectkit.strategies]\nsmallest_doubled = adapter_plugin\n"
    )
    data = tmp_path / "d.jsonl"
    data.write_text("".join(f'{{"id": {i}, "x": {(7 * i) % 10}, "label": 1}}\n' for i in range(10)))
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from selectkit.cli import entrypoint
        sys.argv = ["selectkit", "-q", "select", {str(data)!r}, "-s", "smallest_doubled",
                    "-b", "3", "-o", "-"]
        entrypoint()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = [pl.read_ndjson(line.encode()).row(0, named=True) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in rows] == [0, 3, 6] and [r["score"] for r in rows] == [0.0, 2.0, 4.0]
    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path)!r}); sys.argv = ['selectkit', "
            "'strategies', '--json']; from selectkit.cli import entrypoint; entrypoint()",
        ],
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0, listing.stderr
    assert '"input": "doubled"' in listing.stdout
