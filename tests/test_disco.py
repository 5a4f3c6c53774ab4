"""DISCO's predictor and evaluation, through the CLI and the Python API, on a real model zoo
(scikit-learn classifiers trained on digits)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import selectkit as sk
import selectkit.disco as disco
from selectkit import SelectkitError, SelectkitUsageError, read_provenance
from selectkit.disco.predictor import ARRAYS_FILE, META_FILE


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, digits) -> dict:
    """18 real classifiers of five families trained on subsets of the first 900 digits, and their
    predictions on the other 897 in long format (model, id, proba, group, correct, label)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    x, y = digits
    rng = np.random.default_rng(0)
    train, held = np.arange(900), np.arange(900, len(y))
    specs = [(f"logreg_c{c}_n{n}", LogisticRegression(C=c, max_iter=300), n)
             for c in (0.001, 0.01, 0.1, 1.0, 10.0) for n in (60, 300)]  # fmt: skip
    specs += [(f"knn_k{k}", KNeighborsClassifier(k), 300) for k in (1, 5, 25)]
    specs += [
        (f"tree_d{d}", DecisionTreeClassifier(max_depth=d, random_state=0), 600) for d in (3, 6)
    ]
    specs += [("gaussnb", GaussianNB(), 600), ("gaussnb_n60", GaussianNB(), 60)]
    specs += [("knn_k3_n60", KNeighborsClassifier(3), 60)]
    frames, acc = [], []
    for name, model, n in specs:
        rows = rng.choice(train, size=n, replace=False)
        model.fit(x[rows], y[rows])
        proba = np.zeros((held.size, 10), dtype=np.float32)
        proba[:, model.classes_] = model.predict_proba(x[held])
        correct = proba.argmax(axis=1) == y[held]
        frames.append(
            pl.DataFrame(
                {
                    "model": name,
                    "id": held.astype(np.int64),
                    "proba": pl.Series(proba.tolist(), dtype=pl.List(pl.Float32)),
                    "group": [f"digit{d}" for d in y[held]],
                    "correct": correct,
                    "label": y[held].astype(np.int64),
                }
            )
        )
        acc.append({"model": name, "accuracy": float(correct.mean())})
    folder = tmp_path_factory.mktemp("zoo")
    preds = pl.concat(frames)
    paths = {"dir": folder, "frame": preds, "acc_frame": pl.DataFrame(acc)}
    preds.drop("label").write_parquet(folder / "preds.parquet")
    preds.drop("correct").write_parquet(folder / "preds_label.parquet")
    pl.DataFrame(acc).write_parquet(folder / "acc.parquet")
    models = preds.get_column("model").unique(maintain_order=True).to_list()
    paths["models"] = models
    paths["source"] = [m for i, m in enumerate(models) if i % 4 != 1]
    paths["new"] = [m for i, m in enumerate(models) if i % 4 == 1]
    preds.filter(pl.col("model").is_in(paths["source"])).drop("label").write_parquet(
        folder / "source.parquet"
    )
    return paths


def _anchors(cli, zoo, budget=40) -> Path:
    out = zoo["dir"] / f"anchors{budget}.parquet"
    if not out.exists():
        result = cli(
            "select", zoo["dir"] / "source.parquet", "-s", "disco", "-b", budget, "-o", out
        )
        assert result.exit_code == 0, result.stderr
    return out


def test_cli_fit_predict_round_trip(cli, zoo, tmp_path):
    anchors = _anchors(cli, zoo)
    pred_dir = tmp_path / "predictor"
    summary = cli.json(
        "disco", "fit", zoo["dir"] / "source.parquet", zoo["dir"] / "acc.parquet",
        "--anchors", anchors, "-o", pred_dir,
    )  # fmt: skip
    assert summary["anchors"] == 40 and summary["models"] == len(zoo["source"])
    assert summary["pca_dim"] == len(zoo["source"]) - 1  # at most M - 1 axes carry variance
    # new models need rows for the anchors only, as JSON Lines
    anchor_ids = pl.read_parquet(anchors).get_column("id")
    new = zoo["frame"].filter(
        pl.col("model").is_in(zoo["new"]) & pl.col("id").is_in(anchor_ids.implode())
    )
    new_path = tmp_path / "new.jsonl"
    new.drop("label", "correct").write_ndjson(new_path)
    out = tmp_path / "predicted.parquet"
    result = cli("disco", "predict", pred_dir, new_path, "-o", out)
    assert result.exit_code == 0, result.stderr
    predicted = pl.read_parquet(out)
    assert predicted.columns == ["model", "predicted_accuracy"]
    assert predicted.get_column("model").to_list() == zoo["new"]
    values = predicted.get_column("predicted_accuracy").to_numpy()
    assert np.all((values >= 0) & (values <= 1))
    # the API gives the same numbers
    api = disco.predict_accuracy(disco.load_predictor(pred_dir), disco.load_predictions(new_path))
    assert api.equals(predicted)
    # and they carry information: rank correlation with the true accuracies
    truth = zoo["acc_frame"].filter(pl.col("model").is_in(zoo["new"]))
    assert disco.spearman(values, truth.get_column("accuracy").to_numpy()) > 0.5
    assert read_provenance(out)["params"]["regressor"] == "ridge"
    meta = json.loads((pred_dir / META_FILE).read_text())
    # read from the anchors' provenance: select sorts the models by name (order-free)
    assert meta["guiding_models"] == sorted(zoo["source"])


def test_predict_warns_about_models_it_has_seen(cli, zoo, tmp_path, capsys, monkeypatch):
    from selectkit import console

    monkeypatch.setitem(console._state, "quiet", False)  # CLI tests run with -q
    preds = disco.load_predictions(zoo["dir"] / "source.parquet")
    predictor = disco.fit_predictor(preds, preds.accuracy(), np.arange(20))
    disco.predict_accuracy(predictor, preds)
    assert f"{preds.n_models} model(s) of" in capsys.readouterr().err
    fresh = disco.load_predictions(zoo["dir"] / "preds.parquet").subset_models(np.array([1]))
    assert fresh.models[0] in zoo["new"]
    disco.predict_accuracy(predictor, fresh)
    assert "helped choose" not in capsys.readouterr().err


def test_predictor_folder_is_json_and_npz_without_pickle(cli, zoo, tmp_path):
    pred_dir = tmp_path / "p"
    result = cli(
        "disco", "fit", zoo["dir"] / "source.parquet", "--anchors", _anchors(cli, zoo),
        "-o", pred_dir, "--regressor", "knn", "--neighbors", "2", "--pca", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in pred_dir.iterdir()) == [ARRAYS_FILE, META_FILE]
    meta = json.loads((pred_dir / META_FILE).read_text())
    assert meta["regressor"] == "knn" and meta["neighbors"] == 2 and meta["pca_dim"] == 5
    assert meta["models"] == zoo["source"] and len(meta["anchor_ids"]) == 40
    assert meta["selectkit_version"] == sk.__version__
    assert meta["inputs"][0]["fingerprint"].startswith("parquet-data-blake2b-128:")
    assert meta["accuracy_source"] == "computed from the predictions' correctness"
    with zipfile.ZipFile(pred_dir / ARRAYS_FILE) as zf:
        names = zf.namelist()
    assert all(n.endswith(".npy") for n in names)
    with np.load(pred_dir / ARRAYS_FILE, allow_pickle=False) as npz:
        assert all(npz[k].dtype == np.float64 for k in npz.files)
    raw = (pred_dir / ARRAYS_FILE).read_bytes() + (pred_dir / META_FILE).read_bytes()
    assert b"\x80\x04" not in raw and b"\x80\x05" not in raw and b"cnumpy" not in raw


def test_wrong_shapes_and_missing_anchors_are_refused(cli, zoo, tmp_path):
    preds = disco.load_predictions(zoo["dir"] / "source.parquet")
    acc = preds.accuracy()
    rows = np.arange(0, 60, 3)
    predictor = disco.fit_predictor(preds, acc, rows)
    good = disco.signatures(preds, rows)
    np.testing.assert_allclose(predictor.predict(good.reshape(-1, 20, 10)), predictor.predict(good))
    for bad in (good[:, :-10], good.reshape(-1, 10, 20), good[0]):
        with pytest.raises(SelectkitError, match=r"expects \(models, 20, 10\) or \(models, 200\)"):
            predictor.predict(bad)
    pred_dir = tmp_path / "p"
    disco.save_predictor(predictor, pred_dir)
    # five classes instead of ten
    five = (
        zoo["frame"]
        .filter(pl.col("model") == "gaussnb")
        .with_columns(
            pl.col("proba")
            .list.head(5)
            .list.eval((pl.element() + 0.1) / (pl.element() + 0.1).sum())
        )
    )
    five_path = tmp_path / "five.parquet"
    five.drop("label", "correct").write_parquet(five_path)
    result = cli("disco", "predict", pred_dir, five_path, "-o", tmp_path / "o.parquet")
    assert result.exit_code == 1
    assert "has 5 classes per proba but the predictor was fitted on 10" in result.stderr
    # rows for only some anchors
    ids = predictor.anchor_ids
    few = zoo["frame"].filter((pl.col("model") == "gaussnb") & pl.col("id").is_in(ids[:15]))
    few_path = tmp_path / "few.parquet"
    few.drop("label").write_parquet(few_path)
    result = cli("disco", "predict", pred_dir, few_path, "-o", tmp_path / "o.parquet")
    assert result.exit_code == 1
    assert "lacks 5 of the 20 anchors of the predictor" in result.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_ridge_and_pca_match_scikit_learn(zoo):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge

    preds = disco.load_predictions(zoo["dir"] / "source.parquet")
    acc = preds.accuracy()
    rows = np.arange(100, 160)
    x = disco.signatures(preds, rows)
    predictor = disco.fit_predictor(preds, acc, rows, pca_dim=6, alpha=10.0)
    pca = PCA(6, svd_solver="full").fit(x)
    # same axes up to sign
    np.testing.assert_allclose(
        np.abs(predictor.components @ pca.components_.T), np.eye(6), atol=1e-6
    )
    z = (x - predictor.mean) @ predictor.components.T
    ridge = Ridge(alpha=10.0).fit(z, acc)
    np.testing.assert_allclose(predictor.coef, ridge.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        predictor.predict(x), np.clip(ridge.predict(z), 0, 1), rtol=1e-8, atol=1e-10
    )
    # the PCA is the source models' own: their mean signature
    np.testing.assert_allclose(predictor.mean, x.mean(axis=0))


def test_knn_returns_the_nearest_source_models_accuracy(zoo):
    preds = disco.load_predictions(zoo["dir"] / "source.parquet")
    acc = preds.accuracy()
    rows = np.arange(0, 897, 9)
    predictor = disco.fit_predictor(preds, acc, rows, regressor="knn", neighbors=1)
    np.testing.assert_allclose(predictor.predict(disco.signatures(preds, rows)), acc)
    # averaging every source model would predict one number for all: refused
    with pytest.raises(SelectkitUsageError, match="same prediction"):
        disco.fit_predictor(preds, acc, rows, regressor="knn", neighbors=len(acc))


def test_save_load_round_trip_and_output_rules(zoo, tmp_path):
    preds = disco.load_predictions(zoo["dir"] / "source.parquet")
    rows = np.arange(30)
    for regressor in ("ridge", "knn"):
        p = disco.fit_predictor(preds, preds.accuracy(), rows, regressor=regressor, neighbors=3)
        folder = disco.save_predictor(p, tmp_path / regressor)
        q = disco.load_predictor(folder)
        sig = disco.signatures(preds, rows)
        np.testing.assert_array_equal(p.predict(sig), q.predict(sig))
        assert q.anchor_ids == p.anchor_ids and q.models == p.models
        disco.save_predictor(q, folder)  # an earlier predictor may be replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(sk.SelectkitUsageError, match="already holds other files"):
        disco.save_predictor(p, tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    (tmp_path / "ridge" / ARRAYS_FILE).unlink()
    with pytest.raises(SelectkitError, match="not a DISCO predictor folder"):
        disco.load_predictor(tmp_path / "ridge")
    meta = json.loads((tmp_path / "knn" / META_FILE).read_text())
    meta["pca_dim"] += 1
    (tmp_path / "knn" / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(SelectkitError, match="array 'components' has shape"):
        disco.load_predictor(tmp_path / "knn")


def test_accuracy_from_correct_label_or_table(cli, zoo, tmp_path):
    a = disco.load_predictions(zoo["dir"] / "preds.parquet")
    b = disco.load_predictions(zoo["dir"] / "preds_label.parquet")
    np.testing.assert_array_equal(a.correct, b.correct)
    acc_table, source = disco.model_accuracy(a, zoo["dir"] / "acc.parquet")
    np.testing.assert_allclose(acc_table, b.accuracy())
    assert source.startswith("read from")
    bad = tmp_path / "acc_pct.parquet"
    zoo["acc_frame"].with_columns(pl.col("accuracy") * 100).write_parquet(bad)
    with pytest.raises(SelectkitError, match=r"fractions in \[0, 1\].*percentages"):
        disco.model_accuracy(a, bad)
    short = tmp_path / "acc_short.parquet"
    zoo["acc_frame"].filter(pl.col("model") != "gaussnb").write_parquet(short)
    with pytest.raises(SelectkitError, match=r"no accuracy for 1 model\(s\).*'gaussnb'"):
        disco.model_accuracy(a, short)
    bare = tmp_path / "bare.parquet"
    zoo["frame"].drop("label", "correct").write_parquet(bare)
    result = cli("disco", "fit", bare, "--anchors", _anchors(cli, zoo), "-o", tmp_path / "p")
    assert result.exit_code == 1
    assert "no accuracy table given" in result.stderr and "'correct' or 'label'" in result.stderr


def test_fit_reports_incomplete_models(cli, zoo, tmp_path):
    cut = zoo["frame"].filter(~((pl.col("model") == "knn_k1") & (pl.col("id") < 920)))
    path = tmp_path / "cut.parquet"
    cut.write_parquet(path)
    anchors = _anchors(cli, zoo)
    args = ("disco", "fit", path, "--anchors", anchors, "-o", tmp_path / "p")
    result = cli(*args)
    assert result.exit_code == 1 and "'knn_k1' lacks 20" in result.stderr
    assert not (tmp_path / "p").exists()
    summary = cli.json(*args, "--drop-incomplete")
    assert summary["models"] == len(zoo["models"]) - 1
    meta = json.loads((tmp_path / "p" / META_FILE).read_text())
    assert meta["dropped_models"] == {"knn_k1": 20}


def test_evaluate_cli_and_api(cli, zoo, tmp_path):
    from typer.testing import CliRunner

    from selectkit.cli import app

    out = tmp_path / "eval.parquet"
    # without -q: the table is for people, on stderr; stdout is data only (issue 12 item 8)
    result = CliRunner().invoke(app, [
        "disco", "evaluate", str(zoo["dir"] / "preds.parquet"), str(zoo["dir"] / "acc.parquet"),
        "--budgets", "10,40", "--seeds", "3", "-o", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "disco+ridge" in result.stderr and "random+naive" in result.stderr
    assert result.stdout == ""
    rows = pl.read_parquet(out)
    assert rows.height == 3 * 2 * 4
    assert set(rows.get_column("method")) == {
        "disco+ridge",
        "random+ridge",
        "random+naive",
        "disco+naive",
    }
    assert (rows.get_column("n_test") == 4).all()  # 20% of 18 models
    preds = disco.load_predictions(zoo["dir"] / "preds.parquet")
    acc, _ = disco.model_accuracy(preds, zoo["dir"] / "acc.parquet")
    api = disco.evaluate(preds, acc, budgets=(10, 40), seeds=3)
    assert api.equals(rows)  # same seed, same numbers
    prov = read_provenance(out)
    assert prov["params"]["budgets"] == [10, 40] and len(prov["metrics"]["summary"]) == 8
    # the bias pitfall: raw accuracy on high-disagreement anchors is far off
    mean = disco.summarise(rows).filter(pl.col("budget") == 40)
    by = dict(zip(mean["method"], mean["mae_mean"], strict=True))
    assert by["disco+naive"] > 2 * by["random+naive"]
    # rows to stdout: the table goes to stderr and stdout stays JSON Lines
    piped = cli(
        "disco", "evaluate", zoo["dir"] / "preds.parquet", "--budgets", "10", "--seeds", "2",
        "-o", "-",
    )  # fmt: skip
    assert piped.exit_code == 0, piped.stderr
    lines = [json.loads(line) for line in piped.stdout.splitlines()]
    assert len(lines) == 2 * 4 and "disco+ridge" not in piped.stderr  # -q: no table
    # another seed splits the models differently
    other = disco.evaluate(preds, acc, budgets=(10, 40), seeds=3, seed=1)
    assert not other.get_column("mae").equals(rows.get_column("mae"))


def test_evaluate_options_and_errors(cli, zoo, tmp_path):
    preds = disco.load_predictions(zoo["dir"] / "preds.parquet")
    acc = preds.accuracy()
    knn = disco.evaluate(
        preds, acc, budgets=(20,), seeds=2, regressor="knn", neighbors=3, disagreement="jsd",
        stratify="none", guiding_models=8, pca_dim=4, test_fraction=0.3,
    )  # fmt: skip
    assert set(knn.get_column("method")) >= {"disco+knn", "random+knn"}
    assert (knn.get_column("n_test") == 5).all()
    with pytest.raises(SelectkitError, match="needs at least 2 of each"):
        disco.evaluate(preds, acc, budgets=(10,), seeds=1, test_fraction=0.05)
    with pytest.raises(SelectkitError, match="between 1 and the 897 samples"):
        disco.evaluate(preds, acc, budgets=(1000,), seeds=1)
    no_truth = disco.load_predictions(zoo["dir"] / "source.parquet")
    no_truth.correct = None
    with pytest.raises(SelectkitError, match=r"naive baseline .* 'correct' column"):
        disco.evaluate(no_truth, acc[: no_truth.n_models], budgets=(10,), seeds=1)
    result = cli(
        "disco", "evaluate", zoo["dir"] / "preds.parquet", "--budgets", "ten", "-o",
        tmp_path / "e.parquet",
    )  # fmt: skip
    assert result.exit_code == 2 and not (tmp_path / "e.parquet").exists()
    result = cli(
        "disco", "evaluate", zoo["dir"] / "preds.parquet", "--regressor", "lasso", "-o",
        tmp_path / "e.parquet",
    )  # fmt: skip
    assert result.exit_code == 2 and "--regressor lasso must be one of ridge, knn, forest" in (
        result.stderr
    )
    result = cli(
        "disco", "evaluate", zoo["dir"] / "preds.parquet", "--split", "date", "-o",
        tmp_path / "e.parquet",
    )  # fmt: skip
    assert result.exit_code == 2 and "--split date must be one of random, iid" in result.stderr


def test_forest_matches_scikit_learn_and_round_trips_without_pickle(cli, zoo, tmp_path):
    from sklearn.ensemble import RandomForestRegressor

    preds = disco.load_predictions(zoo["dir"] / "source.parquet")
    acc = preds.accuracy()
    rows = np.arange(0, 897, 20)
    p = disco.fit_predictor(preds, acc, rows, regressor="forest", pca_dim=5, random_state=7)
    x = disco.signatures(preds, rows)
    z = (x - p.mean) @ p.components.T
    ref = RandomForestRegressor(100, random_state=7, n_jobs=1).fit(z, acc)
    others = disco.load_predictions(zoo["dir"] / "preds.parquet")
    x_all = disco.signatures(others, rows)
    z_all = (x_all - p.mean) @ p.components.T
    # the exported node arrays walk to the same leaves as scikit-learn's trees
    np.testing.assert_allclose(p.predict(x_all), np.clip(ref.predict(z_all), 0, 1), atol=1e-12)
    assert p.forest.left.size > 100 * 3 and p.forest.roots.size == 100
    folder = disco.save_predictor(p, tmp_path / "forest")
    with zipfile.ZipFile(folder / ARRAYS_FILE) as zf:
        names = sorted(zf.namelist())
    assert "forest_threshold.npy" in names and "forest_left.npy" in names
    q = disco.load_predictor(folder)  # allow_pickle=False inside
    np.testing.assert_array_equal(q.predict(x_all), p.predict(x_all))
    assert q.forest.left.dtype == np.int64 and q.regressor == "forest"
    # same seed, same forest; another seed, another forest
    again = disco.fit_predictor(preds, acc, rows, regressor="forest", pca_dim=5, random_state=7)
    np.testing.assert_array_equal(again.forest.threshold, p.forest.threshold)
    other = disco.fit_predictor(preds, acc, rows, regressor="forest", pca_dim=5, random_state=8)
    assert not np.array_equal(other.predict(x_all), p.predict(x_all))
    # a child pointing backwards (a loop) is refused on load
    with np.load(folder / ARRAYS_FILE) as npz:
        arrays = {k: npz[k] for k in npz.files}
    inner = np.flatnonzero(arrays["forest_left"] != -1)
    arrays["forest_left"][inner[-1]] = 0
    np.savez(folder / ARRAYS_FILE, **arrays)
    with pytest.raises(SelectkitError, match="node arrays are inconsistent"):
        disco.load_predictor(folder)
    arrays["forest_left"] = arrays["forest_left"].astype(np.float64)
    np.savez(folder / ARRAYS_FILE, **arrays)
    with pytest.raises(SelectkitError, match="wrong type"):
        disco.load_predictor(folder)
    # through the CLI: --seed makes the forest reproducible byte for byte
    anchors = _anchors(cli, zoo, budget=20)
    outs = []
    for name in ("a", "b"):
        result = cli(
            "disco", "fit", zoo["dir"] / "source.parquet", zoo["dir"] / "acc.parquet",
            "--anchors", anchors, "--regressor", "forest", "--pca", "4", "--seed", "3",
            "-o", tmp_path / name,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        outs.append((tmp_path / name / ARRAYS_FILE).read_bytes())
    assert outs[0] == outs[1]
    result = cli(
        "disco", "predict", tmp_path / "a", zoo["dir"] / "preds.parquet", "-o",
        tmp_path / "pred.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = pl.read_csv(tmp_path / "pred.csv", comment_prefix="#")
    assert got.height == len(zoo["models"]) and got["predicted_accuracy"].is_between(0, 1).all()


def test_iid_split_every_kth_model_by_accuracy():
    from selectkit.disco.evaluate import iid_split

    acc = np.linspace(0.1, 0.9, 120)[::-1].copy()
    names = [f"m{i:03d}" for i in range(120)]
    src, test = iid_split(acc, names, 0)
    # k = 120 // 40 = 3: the lowest-accuracy model and every third one up from it
    order = np.argsort(acc, kind="stable")
    np.testing.assert_array_equal(test, np.sort(order[::3]))
    assert test.size == 40 and src.size == 80 and np.intersect1d(src, test).size == 0
    # seed s starts at s mod k: the three offsets partition the models
    tests = [iid_split(acc, names, s)[1] for s in range(3)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(120))
    np.testing.assert_array_equal(iid_split(acc, names, 3)[1], tests[0])
    # small zoos: k is at least 2, so half the models are test models
    assert iid_split(acc[:10], names[:10], 0)[1].size == 5
    # ties in accuracy are broken by name, not by input order
    tied = np.full(8, 0.5)
    a = iid_split(tied, [f"z{i}" for i in range(8)], 0)[1]
    b = iid_split(tied, [f"z{i}" for i in range(8)][::-1], 0)[1]
    assert sorted(a.tolist()) == [0, 2, 4, 6] and sorted(b.tolist()) == [1, 3, 5, 7]
    with pytest.raises(SelectkitError, match="at least 4 models"):
        iid_split(acc[:3], names[:3], 0)


def test_evaluate_iid_split_is_deterministic(cli, zoo, tmp_path):
    outs = []
    for name in ("a", "b"):
        result = cli(
            "disco", "evaluate", zoo["dir"] / "preds.parquet", zoo["dir"] / "acc.parquet",
            "--split", "iid", "--regressor", "forest", "--budgets", "10,20", "--seeds", "2",
            "--pca", "4", "-o", tmp_path / f"{name}.parquet",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        outs.append(pl.read_parquet(tmp_path / f"{name}.parquet"))
    assert outs[0].equals(outs[1])
    rows = outs[0]
    # 18 models: k = 2, so 9 test models per seed, and the two seeds test the other halves
    assert (rows["n_test"] == 9).all() and (rows["n_source"] == 9).all()
    assert set(rows["method"]) == {"disco+forest", "random+forest", "random+naive", "disco+naive"}
    assert read_provenance(tmp_path / "a.parquet")["params"]["split"] == "iid"


def test_anchor_accuracy_feature_regressors_and_round_trip(zoo, tmp_path):
    """features=signature+accuracy: every regressor predicts accuracy - anchor accuracy and adds
    the model's own anchor accuracy back; saved and loaded without pickle, same predictions."""
    from sklearn.ensemble import RandomForestRegressor

    preds = disco.load_predictions(zoo["dir"] / "source.parquet")
    acc = preds.accuracy()
    rows = np.arange(0, 897, 15)
    a = preds.correct[:, rows].mean(axis=1)
    x = disco.signatures(preds, rows)
    others = disco.load_predictions(zoo["dir"] / "preds.parquet")
    x_all, a_all = disco.signatures(others, rows), others.correct[:, rows].mean(axis=1)
    feat = "signature+accuracy"
    # 1-NN: the nearest source model's gap, added to the model's own anchor accuracy; on the
    # source models themselves that gives back their accuracy
    knn = disco.fit_predictor(preds, acc, rows, regressor="knn", features=feat)
    np.testing.assert_allclose(knn.predict(x, a), acc)
    plain = disco.fit_predictor(preds, acc, rows, regressor="knn")
    # the neighbour is chosen on the signature alone (cosine of PCA-reduced signatures)
    z, z_all = ((s - knn.mean) @ knn.components.T for s in (x, x_all))
    unit = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in (z, z_all)]
    nearest = np.argmax(unit[1] @ unit[0].T, axis=1)
    np.testing.assert_allclose(plain.predict(x_all), acc[nearest])
    np.testing.assert_allclose(
        knn.predict(x_all, a_all), np.clip(a_all + (acc - a)[nearest], 0, 1), atol=1e-12
    )
    # ridge: with the signature weights shrunk to nothing (huge alpha), what is left is an
    # ordinary least-squares line of the gap on the anchor accuracy (that weight is not shrunk)
    ridge = disco.fit_predictor(preds, acc, rows, features=feat, alpha=1e12)
    slope, icept = np.polyfit(a, acc - a, 1)
    np.testing.assert_allclose(
        ridge.predict(x_all, a_all), np.clip(a_all + slope * a_all + icept, 0, 1), atol=1e-6
    )
    # forest: scikit-learn's forest on (PCA axes, anchor accuracy) -> gap
    forest = disco.fit_predictor(
        preds, acc, rows, regressor="forest", pca_dim=4, random_state=5, features=feat
    )
    z = (x - forest.mean) @ forest.components.T
    ref = RandomForestRegressor(100, random_state=5, n_jobs=1).fit(np.column_stack([z, a]), acc - a)
    z_all = (x_all - forest.mean) @ forest.components.T
    expect = np.clip(a_all + ref.predict(np.column_stack([z_all, a_all])), 0, 1)
    np.testing.assert_allclose(forest.predict(x_all, a_all), expect, atol=1e-12)
    for name, p in (("knn", knn), ("ridge", ridge), ("forest", forest)):
        folder = disco.save_predictor(p, tmp_path / name)
        assert json.loads((folder / META_FILE).read_text())["features"] == feat
        q = disco.load_predictor(folder)
        assert q.features == feat
        np.testing.assert_array_equal(q.predict(x_all, a_all), p.predict(x_all, a_all))
        with pytest.raises(SelectkitError, match="anchor_accuracy"):
            q.predict(x_all)
    # a predictor saved before the option existed (no "features" key) is a signature predictor
    folder = disco.save_predictor(plain, tmp_path / "old")
    meta = json.loads((folder / META_FILE).read_text())
    del meta["features"]
    (folder / META_FILE).write_text(json.dumps(meta))
    assert disco.load_predictor(folder).features == "signature"
    # damaged: the anchor accuracies of the source models are missing
    with np.load(tmp_path / "knn" / ARRAYS_FILE) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "train_anchor_accuracy"}
    np.savez(tmp_path / "knn" / ARRAYS_FILE, **arrays)
    with pytest.raises(SelectkitError, match="train_anchor_accuracy"):
        disco.load_predictor(tmp_path / "knn")
    with pytest.raises(sk.SelectkitUsageError, match=r"features='accuracy' must be one of"):
        disco.fit_predictor(preds, acc, rows, features="accuracy")


def test_cli_anchor_accuracy_feature_needs_correctness(cli, zoo, tmp_path):
    anchors = _anchors(cli, zoo, budget=20)
    pred_dir = tmp_path / "predictor"
    summary = cli.json(
        "disco", "fit", zoo["dir"] / "source.parquet", zoo["dir"] / "acc.parquet",
        "--anchors", anchors, "--features", "signature+accuracy", "-o", pred_dir,
    )  # fmt: skip
    assert summary["features"] == "signature+accuracy"
    anchor_ids = pl.read_parquet(anchors).get_column("id")
    new = zoo["frame"].filter(
        pl.col("model").is_in(zoo["new"]) & pl.col("id").is_in(anchor_ids.implode())
    )
    # `label` (per id) is enough to know the new models' correctness on the anchors
    with_label = tmp_path / "new.parquet"
    new.drop("correct").write_parquet(with_label)
    out = tmp_path / "predicted.parquet"
    result = cli("disco", "predict", pred_dir, with_label, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert read_provenance(out)["params"]["features"] == "signature+accuracy"
    values = pl.read_parquet(out).get_column("predicted_accuracy").to_numpy()
    truth = zoo["acc_frame"].filter(pl.col("model").is_in(zoo["new"]))
    assert disco.spearman(values, truth.get_column("accuracy").to_numpy()) > 0.5
    # without `correct` or `label`: refused, nothing written
    bare = tmp_path / "bare.parquet"
    new.drop("correct", "label").write_parquet(bare)
    out2 = tmp_path / "refused.parquet"
    result = cli("disco", "predict", pred_dir, bare, "-o", out2)
    assert result.exit_code == 1 and not out2.exists()
    assert "signature+accuracy" in result.stderr and "'correct'" in result.stderr
    # fitting with the feature on predictions without correctness is refused too
    no_correct = tmp_path / "source_bare.parquet"
    pl.read_parquet(zoo["dir"] / "source.parquet").drop("correct").write_parquet(no_correct)
    result = cli(
        "disco", "fit", no_correct, zoo["dir"] / "acc.parquet", "--anchors", anchors,
        "--features", "signature+accuracy", "-o", tmp_path / "p2",
    )  # fmt: skip
    assert result.exit_code == 1 and "features signature+accuracy" in result.stderr
    result = cli(
        "disco", "fit", no_correct, zoo["dir"] / "acc.parquet", "--anchors", anchors,
        "--features", "accuracy", "-o", tmp_path / "p3",
    )  # fmt: skip
    assert result.exit_code == 2 and "--features accuracy must be one of" in result.stderr
    # evaluate takes it too, records it, and reports the same methods
    out3 = tmp_path / "eval.parquet"
    result = cli(
        "disco", "evaluate", zoo["dir"] / "preds.parquet", "--budgets", "20", "--seeds", "1",
        "--features", "signature+accuracy", "-o", out3,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert read_provenance(out3)["params"]["features"] == "signature+accuracy"
    methods = set(pl.read_parquet(out3).get_column("method"))
    assert methods == {"disco+ridge", "random+ridge", "random+naive", "disco+naive"}


def test_summary_leaves_undefined_spearman_out():
    results = pl.DataFrame(
        {
            "budget": [10, 10],
            "method": ["disco+ridge", "disco+ridge"],
            "mae": [2.0, 4.0],
            "median_ae": [1.0, 3.0],
            "spearman": [float("nan"), 0.5],
        }
    )
    row = disco.summarise(results).row(0, named=True)
    assert row["mae_mean"] == 3.0 and row["spearman_mean"] == 0.5
    assert row["spearman_seeds"] == 1 and row["seeds"] == 2


def test_evaluate_warns_when_seeds_repeat_splits_or_test_outnumbers_source(
    cli, zoo, tmp_path, capsys, monkeypatch
):
    """Issue 12 item 10: `± sd over seeds` must not hide that the seeds repeated a split."""
    from selectkit import console

    out = tmp_path / "e.parquet"
    # 18 models under the iid split: k = 2, so 3 seeds hold out only 2 distinct model sets
    result = cli(
        "disco", "evaluate", zoo["dir"] / "preds.parquet", "--split", "iid", "--budgets", "10",
        "--seeds", "3", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    prov = read_provenance(out)
    assert prov["metrics"]["distinct_splits"] == 2
    assert len(prov["metrics"]["warnings"]) == 1
    assert "3 seeds held out only 2 distinct sets" in prov["metrics"]["warnings"][0]
    rows = pl.read_parquet(out)
    assert rows.group_by("seed").agg(pl.col("split").first()).get_column("split").n_unique() == 2
    # the same from Python, on stderr
    monkeypatch.setitem(console._state, "quiet", False)
    preds = disco.load_predictions(zoo["dir"] / "preds.parquet")
    disco.evaluate(preds, preds.accuracy(), budgets=(10,), seeds=3, split="iid")
    assert "warning: the 3 seeds held out only 2 distinct sets" in capsys.readouterr().err
    # two seeds: distinct splits, no warning
    disco.evaluate(preds, preds.accuracy(), budgets=(10,), seeds=2, split="iid")
    assert "warning" not in capsys.readouterr().err
    # 60% held out: 11 test models learn from 7 source models
    rows = disco.evaluate(preds, preds.accuracy(), budgets=(10,), seeds=2, test_fraction=0.6)
    err = capsys.readouterr().err
    assert "2 of the 2 seeds test more models than they learn from" in err
    assert "11 test, 7 source" in err
    assert disco.split_notes(rows) == [line.removeprefix("warning: ") for line in
                                       err.strip().splitlines()]  # fmt: skip


def test_a_per_sample_labels_table_is_joined_on_id(cli, zoo, tmp_path):
    """Issue 12 item 5: disco takes the same inputs as every command, e.g. predictions + a
    labels table (id, label) joined on the id column."""
    frame = zoo["frame"]
    bare = tmp_path / "bare.parquet"
    frame.drop("label", "correct").write_parquet(bare)
    labels = tmp_path / "labels.csv"
    frame.select("id", "label").unique("id", maintain_order=True).reverse().write_csv(labels)
    joined = disco.load_predictions([bare, labels])
    whole = disco.load_predictions(zoo["dir"] / "preds_label.parquet")
    np.testing.assert_array_equal(joined.labels, whole.labels)
    np.testing.assert_array_equal(joined.accuracy(), whole.accuracy())
    # through the CLI: evaluate computes the accuracies from the joined labels
    out = tmp_path / "e.parquet"
    result = cli("disco", "evaluate", bare, labels, "--budgets", "10", "--seeds", "1", "-o", out)
    assert result.exit_code == 0, result.stderr
    ref = tmp_path / "ref.parquet"
    result = cli(
        "disco", "evaluate", zoo["dir"] / "preds_label.parquet", "--budgets", "10", "--seeds",
        "1", "-o", ref,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert pl.read_parquet(out).equals(pl.read_parquet(ref))
    assert [i["path"] for i in read_provenance(out)["inputs"]] == [str(bare), str(labels)]
    # a labels table that misses ids is named
    short = tmp_path / "short.csv"
    pl.read_csv(labels).head(800).write_csv(short)
    result = cli("disco", "evaluate", bare, short, "--budgets", "10", "-o", tmp_path / "x.parquet")
    assert result.exit_code == 1 and "lacks 97 of the predictions' sample ids" in result.stderr
    with pytest.raises(SelectkitError, match=r"none of .* has a model column"):
        disco.load_predictions([labels])
