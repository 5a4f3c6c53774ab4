"""Labels: "has a label" vs "already labelled, never pick" (issue 12 items 1 and 2).

Strategies declare what the label column means to them (``labels=``): acquisition strategies
treat labelled rows as the labelled set; strategies that prune labelled data (ccs, sensitivity,
topk, stratified, disco, ...) use labels as data and may pick every row. ``--labelled-col`` /
``labelled_col=`` marks the rows already labelled for any strategy. Real data: digits (every row
labelled with its true digit) and real classifiers' long-format predictions for DISCO.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from selectkit import (
    Pool,
    SelectkitError,
    SelectkitUsageError,
    parse_budget,
    read_provenance,
    select,
    select_files,
)
from selectkit.strategies import list_strategies

PRUNERS = {  # strategy: extra CLI options
    "ccs": [],
    "sensitivity": [],
    "topk": [],
    "stratified": [],
    "fair-centers": [],
    "omp": [],
}
ACQUISITION = ("kcenter", "coreset", "typiclust", "badge", "margin", "entropy", "random")


@pytest.fixture(scope="module")
def labelled_frame(full_frame) -> pl.DataFrame:
    """Digits with every row labelled by its true digit (a fully labelled training set)."""
    return full_frame.with_columns(label=pl.col("group").cast(pl.Int64))


@pytest.fixture(scope="module")
def labelled_path(tmp_path_factory, labelled_frame):
    path = tmp_path_factory.mktemp("labels") / "train.parquet"
    labelled_frame.write_parquet(path)
    return path


@pytest.fixture(scope="module")
def labelled_long(tmp_path_factory, long_frame):
    """Six real classifiers' predictions on digits, with the true class as ``label`` (as
    docs/disco.md asks for)."""
    frame = long_frame.with_columns(label=pl.col("group").cast(pl.Int64))
    path = tmp_path_factory.mktemp("labels") / "preds.parquet"
    frame.write_parquet(path)
    return frame, path


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_fully_labelled_pool_is_pruned_by_strategies_with_labels_as_data(
    cli, tmp_path, labelled_path, labelled_frame, name
):
    out = tmp_path / "m.parquet"
    r = cli("select", labelled_path, "-s", name, "-b", "10%", *PRUNERS[name], "-o", out)
    assert r.exit_code == 0, r.output
    manifest = pl.read_parquet(out)
    assert manifest.height == parse_budget("10%", labelled_frame.height)  # of every row
    assert manifest.get_column("id").n_unique() == manifest.height
    prov = read_provenance(out)
    assert prov["params"]["labels"] == "data"
    assert prov["params"]["labelled_col"] is None
    assert prov["metrics"]["selectable_rows"] == labelled_frame.height
    # the Python API: the same rows from a pool and from the files
    py, _ = select(Pool(frame=labelled_frame), name, "10%", seed=0)
    assert py.equals(manifest)
    select_files([labelled_path], tmp_path / "p.parquet", strategy=name, budget="10%", seed=0)
    assert pl.read_parquet(tmp_path / "p.parquet").equals(manifest)


def test_disco_on_a_long_table_with_true_labels(cli, tmp_path, labelled_long):
    frame, path = labelled_long
    out = tmp_path / "m.parquet"
    r = cli("select", path, "-s", "disco", "-b", "50", "-o", out)
    assert r.exit_code == 0, r.output
    manifest = pl.read_parquet(out)
    assert manifest.height == 50
    py, _ = select(Pool(frame=frame), "disco", 50, seed=0)
    assert py.equals(manifest)


def test_disco_refuses_a_negative_label_instead_of_reading_it_as_null(tmp_path, labelled_long):
    frame, _ = labelled_long
    bad = frame.with_columns(
        label=pl.when(pl.col("id") == "d0003").then(-1).otherwise(pl.col("label"))
    )
    with pytest.raises(
        SelectkitError, match=r"label -1 is not a class index.*leave the label null"
    ):
        select(Pool(frame=bad), "disco", 5, seed=0)


@pytest.mark.parametrize("name", ["kcenter", "margin", "random"])
def test_acquisition_on_a_fully_labelled_pool_explains_null_and_the_fix(
    cli, tmp_path, labelled_path, labelled_frame, name
):
    r = cli("select", labelled_path, "-s", name, "-b", "5", "-o", tmp_path / "m.parquet")
    assert r.exit_code == 1
    text = " ".join(r.output.split())
    assert "already labelled" in text and "null = unlabelled" in text
    assert '-1 and "" are labels' in text
    assert "--labelled-col" in text and "--label-col none" in text
    with pytest.raises(SelectkitError, match="labelled_col="):
        select(Pool(frame=labelled_frame), name, 5, seed=0)
    # --label-col none keeps working
    ok = cli("select", labelled_path, "-s", name, "-b", "5", "--label-col", "none",
             "-o", tmp_path / "n.parquet")  # fmt: skip
    assert ok.exit_code == 0, ok.output


def test_minus_one_and_empty_string_are_labels(tmp_path, cli, digits):
    x, _ = digits
    n = 200
    ints = [-1 if i % 4 == 0 else None for i in range(n)]
    strs = ["" if i % 5 == 0 else None for i in range(n)]
    for labels in (ints, strs):
        pool = Pool.from_arrays(x[:n], labels=np.array(labels, dtype=object))
        taken = np.flatnonzero([v is not None for v in labels])
        _, sel = select(pool, "kcenter", 50, seed=0)
        assert not np.isin(sel.indices, taken).any()
        # the CLI reads them from a file the same way
        path = tmp_path / "p.jsonl"
        pl.DataFrame({"id": np.arange(n), "embedding": x[:n], "label": labels}).write_ndjson(path)
        out = tmp_path / "m.parquet"
        r = cli("select", path, "-s", "kcenter", "-b", "50", "-o", out)
        assert r.exit_code == 0, r.output
        assert not pl.read_parquet(out).get_column("id").is_in(taken.tolist()).any()
        assert read_provenance(out)["metrics"]["selectable_rows"] == n - taken.size


@pytest.fixture(scope="module")
def marked_path(tmp_path_factory, labelled_frame):
    """The fully labelled digits plus a column ``annotated`` set on every 7th row: the rows a
    user already has in the training set and wants kept out of this round."""
    marked = np.arange(labelled_frame.height) % 7 == 0
    frame = labelled_frame.with_columns(
        annotated=pl.when(pl.Series(marked)).then(pl.lit("yes")).otherwise(None)
    )
    path = tmp_path_factory.mktemp("labels") / "marked.parquet"
    frame.write_parquet(path)
    return path, frame, marked


@pytest.mark.parametrize("name", ["kcenter", "margin", "ccs", "stratified"])
def test_labelled_col_keeps_marked_rows_out_for_any_strategy(cli, tmp_path, marked_path, name):
    path, frame, marked = marked_path
    out = tmp_path / "m.parquet"
    r = cli("select", path, "-s", name, "-b", "10%", "--labelled-col", "annotated", "-o", out)
    assert r.exit_code == 0, r.output
    manifest = pl.read_parquet(out)
    marked_ids = frame.filter(pl.Series(marked)).get_column("id")
    assert not manifest.get_column("id").is_in(marked_ids.implode()).any()
    free = int((~marked).sum())
    assert manifest.height == parse_budget("10%", free)  # the budget counts the free rows
    prov = read_provenance(out)
    assert prov["params"]["labelled_col"] == "annotated"
    assert prov["metrics"]["selectable_rows"] == free
    py, _ = select(Pool(frame=frame), name, "10%", seed=0, labelled_col="annotated")
    assert py.equals(manifest)


def test_labelled_col_counts_marked_rows_as_covered_for_kcenter(marked_path):
    """kcenter starts from the marked rows as centres: no pick is a marked row, and the picks
    differ from a cold start on the same rows with labels ignored."""
    _, frame, marked = marked_path
    warm, _ = select(Pool(frame=frame), "kcenter", 30, seed=0, labelled_col="annotated")
    cold, _ = select(Pool(frame=frame, use_labels=False), "kcenter", 30, seed=0)
    assert cold.height == 30 and warm.height == 30
    marked_ids = frame.get_column("id").filter(pl.Series(marked))
    assert not warm.get_column("id").is_in(marked_ids.implode()).any()
    assert cold.get_column("id").is_in(marked_ids.implode()).any()
    assert not warm.get_column("id").equals(cold.get_column("id"))


def test_labelled_col_marks_samples_of_a_long_table(tmp_path, cli, labelled_long):
    frame, _ = labelled_long
    free, _ = select(Pool(frame=frame), "disco", 40, seed=0, params={"stratify": "none"})
    marked = free.get_column("id").head(3).to_list()  # the samples disagreement likes most
    with_mark = frame.with_columns(  # marked on one model's rows only: the sample is labelled
        reviewed=pl.when(pl.col("id").is_in(marked) & (pl.col("model") == "gaussnb"))
        .then(True)
        .otherwise(None)
    )
    path = tmp_path / "preds.parquet"
    with_mark.write_parquet(path)
    out = tmp_path / "m.parquet"
    r = cli("select", path, "-s", "disco", "-b", "40", "--stratify", "none",
            "--labelled-col", "reviewed", "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    manifest = pl.read_parquet(out)
    assert not manifest.get_column("id").is_in(marked).any()
    py, _ = select(
        Pool(frame=with_mark),
        "disco",
        40,
        seed=0,
        params={"stratify": "none"},
        labelled_col="reviewed",
    )
    assert py.equals(manifest)


def test_labelled_col_that_is_missing_names_the_columns(cli, tmp_path, marked_path):
    path, frame, _ = marked_path
    r = cli("select", path, "-s", "ccs", "-b", "5", "--labelled-col", "anotated", "-o",
            tmp_path / "m.parquet")  # fmt: skip
    assert r.exit_code == 1
    assert "did you mean 'annotated'" in r.output and "--labelled-col" in r.output
    with pytest.raises(SelectkitError, match="labelled_col="):
        select(Pool(frame=frame), "ccs", 5, labelled_col="anotated")


def test_dsir_streams_and_refuses_labelled_col(cli, tmp_path, rt_small):
    r = cli("select", rt_small, "-s", "dsir", "--target", rt_small, "-b", "5",
            "--labelled-col", "label", "-o", tmp_path / "m.parquet")  # fmt: skip
    assert r.exit_code == 2 and "streams its input files" in r.output
    with pytest.raises(SelectkitUsageError, match="labelled_col="):
        select_files(
            [rt_small],
            tmp_path / "p.parquet",
            strategy="dsir",
            budget=5,
            params={"target": [str(rt_small)]},
            labelled_col="label",
        )


def test_strategies_lists_each_label_use(cli):
    rows = {r["name"]: r for r in cli.json("strategies")}
    for name in (*PRUNERS, "disco", "dsir", "balanced"):
        assert rows[name]["labels"] == "data", name
    for name in (*ACQUISITION, "semdedup"):
        assert rows[name]["labels"] == "labelled-set", name
    assert {r["labels"] for r in rows.values()} == {"data", "labelled-set"}
    assert rows["disco"]["input"] == "long" and rows["dsir"]["input"] == "streamed"
    assert rows["kcenter"]["input"] == "wide"
    assert {s.name: s.labels for s in list_strategies()} == {
        k: v["labels"] for k, v in rows.items()
    }
    table = cli("strategies")
    assert table.exit_code == 0
    assert "labelled set" in table.stdout and "as data" in table.stdout


# ---- item 2: --beta is ccs's, the stochastic coldness is --coldness ----


def test_ccs_beta_zero_is_accepted_and_cuts_nothing(cli, tmp_path, labelled_path, labelled_frame):
    out = tmp_path / "m.parquet"
    r = cli("select", labelled_path, "-s", "ccs", "-b", "25%", "--beta", "0", "-o", out)
    assert r.exit_code == 0, r.output
    prov = read_provenance(out)
    assert prov["params"]["strategy_params"]["beta"] == 0.0
    assert prov["metrics"]["ccs_cut_rows"] == 0
    assert prov["params"]["acquisition"] == {}
    # the same through -p and through Python
    r = cli("select", labelled_path, "-s", "ccs", "-b", "25%", "-p", "beta=0", "-o",
            tmp_path / "p.parquet")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(tmp_path / "p.parquet").equals(pl.read_parquet(out))
    py, sel = select(Pool(frame=labelled_frame), "ccs", "25%", seed=0, params={"beta": 0})
    assert sel.params["beta"] == 0.0 and py.equals(pl.read_parquet(out))
    # auto at 75% pruning cuts the hardest 20%: beta 0 keeps them in play
    auto, sel_auto = select(Pool(frame=labelled_frame), "ccs", "25%", seed=0)
    assert sel_auto.params["beta"] == pytest.approx(0.2)
    assert not auto.get_column("id").equals(py.get_column("id"))


def test_coldness_is_recorded_under_its_own_name(cli, tmp_path, full_frame):
    path = tmp_path / "pool.parquet"
    full_frame.write_parquet(path)
    out = tmp_path / "m.parquet"
    r = cli("select", path, "-s", "entropy", "-b", "20", "--stochastic", "power",
            "--coldness", "3", "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert read_provenance(out)["params"]["acquisition"] == {"stochastic": "power", "coldness": 3.0}
    py, _ = select(Pool(frame=full_frame), "entropy", 20, seed=0, stochastic="power", coldness=3.0)
    assert py.equals(pl.read_parquet(out))
    with pytest.raises(SelectkitUsageError, match="stochastic="):
        select(Pool(frame=full_frame), "entropy", 20, coldness=3.0)
    bad = cli("select", path, "-s", "entropy", "-b", "20", "--stochastic", "power",
              "--coldness", "0", "-o", out)  # fmt: skip
    assert bad.exit_code == 2 and "coldness=0.0 must be greater than 0" in bad.output


def test_strategies_json_is_valid_json_with_labels(cli):
    out = cli("strategies", "--json")
    assert out.exit_code == 0
    assert all("labels" in r and "input" in r for r in json.loads(out.stdout))


def test_al_simulate_never_relabels_rows_with_a_data_strategy(digits):
    """al simulate marks the rows labelled so far as the labelled set for every strategy, so a
    strategy with labels as data (balanced) never picks an initial or earlier row again."""
    from selectkit.al import simulate

    x, y = digits
    sim = simulate(x[:600], y[:600], strategies=["balanced"], model="logreg", init=10, batch=20,
                   rounds=4, repeats=1, seed=7)  # fmt: skip
    init = set(sim.info["splits"][0]["init"]["ids"])
    picked = [i for ids in sim.curves.sort("round")["selected"].to_list() for i in ids]
    assert len(picked) == 80 == len(set(picked))
    assert not init & set(picked)
