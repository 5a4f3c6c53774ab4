"""`al simulate`: several inputs joined on id (issue 12 item 5), the model's main parameter and
plug-in scikit-learn classifiers (item 10), bounds declared once (item 13), through the CLI and
the Python API on real data (digits; fortunes' categories as a labels table)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from selectkit import read_provenance
from selectkit.al import simulate, simulate_file
from selectkit.al.models import MODEL_PARAMS, MODELS
from selectkit.al.simulate import SIMULATE_BOUNDS
from selectkit.errors import SelectkitError, SelectkitUsageError

TIMING = ["fit_s", "select_s"]


@pytest.fixture(scope="module")
def split_tables(tmp_path_factory, digits):
    """The first 600 digits as two tables: vectors (id, embedding) and labels (id, label) in
    another row order, plus the same rows as one table."""
    x, y = digits
    d = tmp_path_factory.mktemp("al_inputs")
    ids = [f"d{i}" for i in range(600)]
    pl.DataFrame({"id": ids, "embedding": x[:600]}).write_parquet(d / "emb.parquet")
    labels = pl.DataFrame({"id": ids, "label": y[:600]}).reverse()
    labels.write_csv(d / "labels.csv")
    pl.DataFrame({"id": ids, "embedding": x[:600], "label": y[:600]}).write_parquet(
        d / "one.parquet"
    )
    return d


def test_embeddings_and_a_labels_table_are_joined_on_id(cli, tmp_path, split_tables):
    d = split_tables
    two, one = tmp_path / "two.parquet", tmp_path / "one.parquet"
    args = ["-s", "random,margin", "--init", "10", "--batch", "5", "--rounds", "2"]
    res = cli("al", "simulate", d / "emb.parquet", d / "labels.csv", *args, "--repeats", "1",
              "-o", two)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    res = cli("al", "simulate", d / "one.parquet", *args, "--repeats", "1", "-o", one)
    assert res.exit_code == 0, res.stderr
    assert pl.read_parquet(two).drop(TIMING).equals(pl.read_parquet(one).drop(TIMING))
    assert [i["path"] for i in read_provenance(two)["inputs"]] == [
        str(d / "emb.parquet"),
        str(d / "labels.csv"),
    ]
    prov, summary = simulate_file(
        [d / "emb.parquet", d / "labels.csv"], tmp_path / "api.parquet",
        strategies=["random", "margin"], init=10, batch=5, rounds=2, repeats=1,
    )  # fmt: skip
    assert prov.inputs[1]["path"].endswith("labels.csv") and summary.height == 2
    assert (
        pl.read_parquet(tmp_path / "api.parquet")
        .drop(TIMING)
        .equals(pl.read_parquet(two).drop(TIMING))
    )
    # a labels table that lacks some ids is named
    short = tmp_path / "short.csv"
    pl.read_csv(d / "labels.csv").head(500).write_csv(short)
    res = cli("al", "simulate", d / "emb.parquet", short, "-o", tmp_path / "x.parquet")
    assert res.exit_code == 1 and "lacks 100 of the 600 ids" in res.stderr


def test_model_param_changes_the_model_and_is_recorded(cli, tmp_path, split_tables):
    d = split_tables
    curves = {}
    for c in ("0.01", "10"):
        out = tmp_path / f"c{c}.parquet"
        res = cli("al", "simulate", d / "one.parquet", "-s", "random", "--init", "20",
                  "--rounds", "0", "--repeats", "3", "--model-param", f"C={c}", "-o", out)  # fmt: skip
        assert res.exit_code == 0, res.stderr
        curves[c] = pl.read_parquet(out)
        prov = read_provenance(out)
        assert prov["params"]["model"] == "logreg"
        assert prov["params"]["model_params"] == {"C": float(c)}
        # the split and initial ids are in the provenance (count, sha256, ids when few)
        assert [s["init"]["count"] for s in prov["metrics"]["splits"]] == [20, 20, 20]
    # 20 labels of digits: C = 0.01 regularises a logistic regression into the ground
    assert curves["10"]["accuracy"].mean() > curves["0.01"]["accuracy"].mean() + 0.1
    x, y = pl.read_parquet(d / "one.parquet").select("embedding", "label")
    x = np.stack(x.to_list()).astype(np.float32)
    api = simulate(x, y.to_numpy(), strategies=["random"], init=20, rounds=0, repeats=3,
                   ids=pl.read_parquet(d / "one.parquet")["id"], model_params={"C": 10})  # fmt: skip
    assert api.curves["accuracy"].to_list() == curves["10"]["accuracy"].to_list()


def test_any_scikit_learn_classifier_plugs_in(small_digits):
    x, y = small_digits
    kw = dict(strategies=["random", "margin"], init=10, batch=5, rounds=2, repeats=1, seed=3)
    named = simulate(x, y, model="logreg", model_params={"C": 10}, **kw).curves.drop(TIMING)
    est = simulate(x, y, model=LogisticRegression(C=10, max_iter=1000), **kw).curves.drop(TIMING)
    assert est.equals(named)
    with pytest.raises(SelectkitUsageError, match="no fit/predict_proba"):
        simulate(x, y, model=LinearSVC(), **kw)  # decision_function only
    with pytest.raises(SelectkitUsageError, match="set them on the estimator"):
        simulate(x, y, model=LogisticRegression(), model_params={"C": 2}, **kw)


@pytest.fixture(scope="module")
def small_digits(digits):
    x, y = digits
    return x[:400], y[:400]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model-param", "C=0"],
            "model parameter C=0.0 of 'logreg' ('--model-param' / model_params=) must be greater than 0",
        ),
        (["--model-param", "C=abc"], "C='abc' of 'logreg' is not a finite number"),
        (["--model-param", "gamma=1"], "takes the parameter C"),
        (["-m", "knn", "--model-param", "n_neighbors=2.5"], "is not an integer"),
        (["--model-param", "C"], "is not KEY=VALUE"),
        (["--test-size", "1.5"], "--test-size 1.5 must lie in (0, 1)"),
        (["--init", "-1"], "--init -1 must be at least 0"),
        (["--batch", "0"], "--batch 0 must be at least 1"),
        (["--repeats", "0"], "--repeats 0 must be at least 1"),
    ],
)
def test_bounds_are_usage_errors(cli, tmp_path, split_tables, args, message):
    out = tmp_path / "c.parquet"
    res = cli("al", "simulate", split_tables / "one.parquet", *args, "-o", out)
    assert res.exit_code == 2 and message in res.stderr, res.stderr
    assert not out.exists()


def test_every_model_declares_a_bounded_main_parameter(small_digits):
    assert set(MODEL_PARAMS) == set(MODELS)
    x, y = small_digits
    for name, spec in MODEL_PARAMS.items():
        assert spec.param.within(spec.default)
        with pytest.raises(SelectkitUsageError):
            simulate(x, y, strategies=["random"], model=name, model_params={spec.name: -1},
                     init=10, rounds=0, repeats=1)  # fmt: skip
    assert set(SIMULATE_BOUNDS) >= {"init", "batch", "rounds", "repeats", "test_size"}
    with pytest.raises(SelectkitError, match="more than the"):
        simulate(x, y, strategies=["random"], init=390, rounds=1, repeats=1)
