"""Artefacts applied to the wrong data are refused (issue 12 item 4): a manifest applied to a
table whose row numbers are not the pool's, a manifest whose ids the table lacks, and a DISCO
predictor asked about another benchmark. Real data: data_samples/ and scikit-learn's digits."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from selectkit.apply import apply_manifest
from selectkit.errors import SelectkitError, SelectkitMismatchError
from tests.conftest import FORTUNES, RT


def _without_ids(src, dst, rows: int | None = None):
    """A copy of a data_samples corpus without its id column (ids become row numbers)."""
    with open(src) as a, open(dst, "w") as b:
        for i, line in enumerate(a):
            if rows is not None and i >= rows:
                break
            row = json.loads(line)
            row.pop("id")
            b.write(json.dumps(row) + "\n")
    return dst


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """fortunes and rotten tomatoes without ids, and a manifest selected from fortunes' rows."""
    from typer.testing import CliRunner

    from selectkit.cli import app

    d = tmp_path_factory.mktemp("numbered")
    fortunes = _without_ids(FORTUNES, d / "fortunes.jsonl", rows=600)
    reviews = _without_ids(RT, d / "reviews.jsonl", rows=800)
    emb, man = d / "emb.parquet", d / "m.parquet"
    runner = CliRunner()
    for args in (
        ["embed", str(fortunes), "-o", str(emb)],
        ["select", str(emb), "-s", "random", "-b", "12", "-o", str(man)],
    ):
        r = runner.invoke(app, ["-q", *args])
        assert r.exit_code == 0, r.output
    return {"fortunes": fortunes, "reviews": reviews, "manifest": man}


def test_row_numbered_table_of_another_size_is_refused(cli, tmp_path, numbered):
    out = tmp_path / "s.jsonl"
    r = cli("apply", numbered["manifest"], numbered["reviews"], "-o", out)
    assert r.exit_code == 1
    assert "no id column" in r.stderr and "800 rows" in r.stderr and "600 rows" in r.stderr
    assert "--force" in r.stderr and not out.exists()
    with pytest.raises(SelectkitMismatchError, match="800 rows"):
        apply_manifest(numbered["manifest"], numbered["reviews"], out)
    assert not out.exists()


def test_force_applies_anyway_and_is_recorded(cli, tmp_path, numbered):
    out = tmp_path / "s.parquet"
    r = cli("apply", numbered["manifest"], numbered["reviews"], "-o", out, "--force")
    assert r.exit_code == 0, r.stderr
    got = pl.read_parquet(out)
    assert got.height == 12 and "rank" in got.columns
    from selectkit.io import read_provenance

    assert read_provenance(out)["params"]["force"] is True
    prov = apply_manifest(
        numbered["manifest"], numbered["reviews"], tmp_path / "p.jsonl", force=True
    )
    assert prov.metrics["rows"] == 12


def test_the_corpus_the_rows_came_from_is_accepted(cli, tmp_path, numbered):
    """The documented flow: embed a corpus without ids, select, apply to the corpus itself."""
    out = tmp_path / "s.jsonl"
    r = cli("apply", numbered["manifest"], numbered["fortunes"], "-o", out)
    assert r.exit_code == 0, r.stderr
    texts = [json.loads(line)["text"] for line in numbered["fortunes"].read_text().splitlines()]
    picked = pl.read_parquet(numbered["manifest"]).sort("rank").get_column("id").to_list()
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == [
        texts[i] for i in picked
    ]
    prov = apply_manifest(numbered["manifest"], numbered["fortunes"], tmp_path / "p.jsonl")
    assert prov.metrics == {"manifest_rows": 12, "table_rows": 600, "rows": 12}


def test_npy_pool_needs_a_table_whose_ids_are_row_numbers(cli, tmp_path, digits_npy):
    man = tmp_path / "m.parquet"
    assert cli("select", digits_npy, "-s", "random", "-b", "10", "-o", man).exit_code == 0
    n = int(np.load(digits_npy, mmap_mode="r").shape[0])
    first = np.load(digits_npy)[:, 0]
    shifted = tmp_path / "shifted.parquet"  # ids 1..n: every row number is off by one
    pl.DataFrame({"id": np.arange(1, n + 1), "v": first}).write_parquet(shifted)
    r = cli("apply", man, shifted, "-o", tmp_path / "s.jsonl")
    assert r.exit_code == 1 and "whose ids are row numbers" in r.stderr
    assert "'shifted.parquet' has its own ids" in r.stderr.replace(str(tmp_path) + "/", "")
    with pytest.raises(SelectkitMismatchError, match="not its row numbers"):
        apply_manifest(man, shifted, tmp_path / "s.jsonl")
    # ids that are the row numbers (what `embed` writes for a corpus without ids) are fine
    positional = tmp_path / "positional.parquet"
    pl.DataFrame({"id": np.arange(n), "v": first}).write_parquet(positional)
    out = tmp_path / "ok.parquet"
    assert cli("apply", man, positional, "-o", out).exit_code == 0
    picked = pl.read_parquet(man).sort("rank").get_column("id").to_numpy()
    np.testing.assert_array_equal(pl.read_parquet(out).get_column("v").to_numpy(), first[picked])
    # a table without ids but fewer rows than the matrix
    short = tmp_path / "short.jsonl"
    short.write_text("".join(json.dumps({"v": float(v)}) + "\n" for v in first[: n - 1]))
    r = cli("apply", man, short, "-o", tmp_path / "s.jsonl")
    assert r.exit_code == 1 and f"{n - 1} rows" in r.stderr and f"{n} rows" in r.stderr
    assert cli("apply", man, shifted, "-o", tmp_path / "f.jsonl", "--force").exit_code == 0


def test_ids_the_table_lacks_are_named(cli, tmp_path, rt_emb):
    man = tmp_path / "m.parquet"
    assert cli("select", rt_emb, "-s", "random", "-b", "7", "-o", man).exit_code == 0
    r = cli("apply", man, FORTUNES, "-o", tmp_path / "s.jsonl")
    assert r.exit_code == 1 and "7 of the 7 manifest ids are not in" in r.stderr
    assert "(e.g. 'rt-" in r.stderr
    with pytest.raises(SelectkitMismatchError) as info:
        apply_manifest(man, FORTUNES, tmp_path / "s.jsonl")
    assert isinstance(info.value, SelectkitError) and info.value.exit_code == 1
    # the same ids in another table (the full corpus instead of the embedded 400 rows) are fine
    assert cli("apply", man, RT, "-o", tmp_path / "ok.jsonl").exit_code == 0


# ------------------------------------------------------------------------------------ disco


@pytest.fixture(scope="module")
def bench(tmp_path_factory, digits):
    """A real zoo: 8 classifiers trained on the first 900 digits, their predictions (model, id,
    proba, group, label) on the other 897 (ids 900..1796); the source models and the new ones."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    x, y = digits
    held = np.arange(900, len(y))
    zoo = {
        "lr_c0.01": LogisticRegression(C=0.01, max_iter=300),
        "lr_c1": LogisticRegression(C=1.0, max_iter=300),
        "lr_c100": LogisticRegression(C=100.0, max_iter=300),
        "nb": GaussianNB(),
        "tree3": DecisionTreeClassifier(max_depth=3, random_state=0),
        "tree8": DecisionTreeClassifier(max_depth=8, random_state=0),
        "knn1": KNeighborsClassifier(1),
        "knn15": KNeighborsClassifier(15),
    }
    frames = []
    for i, (name, model) in enumerate(zoo.items()):
        rows = np.arange(i * 40, i * 40 + 300) % 900
        model.fit(x[rows], y[rows])
        proba = np.zeros((held.size, 10), dtype=np.float32)
        proba[:, model.classes_] = model.predict_proba(x[held])
        frames.append(
            pl.DataFrame(
                {
                    "model": name,
                    "id": held.astype(np.int64),
                    "proba": pl.Series(proba.tolist(), dtype=pl.List(pl.Float32)),
                    "group": [f"digit{d}" for d in y[held]],
                    "label": y[held].astype(np.int64),
                }
            )
        )
    frame = pl.concat(frames)
    d = tmp_path_factory.mktemp("bench")
    source = frame.filter(~pl.col("model").is_in(["lr_c1", "knn15"]))
    new = frame.filter(pl.col("model").is_in(["lr_c1", "knn15"]))
    source.write_parquet(d / "source.parquet")
    new.write_parquet(d / "new.parquet")
    return {"dir": d, "new": new}


@pytest.fixture(scope="module")
def fitted(bench):
    from typer.testing import CliRunner

    from selectkit.cli import app

    d = bench["dir"]
    runner = CliRunner()
    for args in (
        # labels are data here; --label-col none until item 1 lets disco take labelled rows
        ["select", d / "source.parquet", "-s", "disco", "-b", "30", "--label-col", "none",
         "-o", d / "anchors.parquet"],
        ["disco", "fit", d / "source.parquet", "--anchors", d / "anchors.parquet", "-o",
         d / "predictor"],
    ):  # fmt: skip
        r = runner.invoke(app, ["-q", *map(str, args)])
        assert r.exit_code == 0, r.output
    return d / "predictor"


def _rotated(new: pl.DataFrame) -> pl.DataFrame:
    """Another benchmark whose sample ids happen to coincide: each id's predictions moved to
    the next sample, so its true label and group are another sample's."""
    return new.with_columns(((pl.col("id") - 900 + 1) % 897 + 900).alias("id"))


def test_predict_on_the_fitted_benchmark_passes(cli, bench, fitted, tmp_path):
    out = tmp_path / "p.parquet"
    r = cli("disco", "predict", fitted, bench["dir"] / "new.parquet", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert pl.read_parquet(out).get_column("model").to_list() == ["lr_c1", "knn15"]
    meta = json.loads((fitted / "predictor.json").read_text())["benchmark"]
    assert meta["samples"] == 897 and len(meta["anchor_labels"]) == 30
    # the anchors' rows alone (no label, no group) carry nothing to contradict: they pass
    anchors = pl.read_parquet(bench["dir"] / "anchors.parquet").get_column("id")
    only = tmp_path / "only.jsonl"
    bench["new"].filter(pl.col("id").is_in(anchors.implode())).drop("label", "group").write_ndjson(
        only
    )
    assert cli("disco", "predict", fitted, only, "-o", tmp_path / "q.parquet").exit_code == 0


def test_predict_on_another_benchmark_is_refused_unless_forced(cli, bench, fitted, tmp_path):
    import selectkit.disco as disco

    other = tmp_path / "other.parquet"
    _rotated(bench["new"]).write_parquet(other)
    out = tmp_path / "p.parquet"
    r = cli("disco", "predict", fitted, other, "-o", out)
    assert r.exit_code == 1 and "not the benchmark this predictor was fitted on" in r.stderr
    assert "anchors have another true label" in r.stderr and "--force" in r.stderr
    assert not out.exists()
    predictor = disco.load_predictor(fitted)
    no_label = disco.load_predictions(other, columns=None)
    no_label.labels = None  # the groups alone also tell
    with pytest.raises(SelectkitMismatchError, match="another group"):
        disco.predict_accuracy(predictor, no_label)
    r = cli("disco", "predict", fitted, other, "-o", out, "--force")
    assert r.exit_code == 0, r.stderr
    from selectkit.io import read_provenance

    assert read_provenance(out)["params"]["force"] is True
    assert disco.predict_accuracy(predictor, no_label, force=True).height == 2


def test_predict_refuses_more_or_other_sample_ids(cli, bench, fitted, tmp_path):
    import selectkit.disco as disco

    anchors = set(pl.read_parquet(bench["dir"] / "anchors.parquet").get_column("id").to_list())
    spare = next(i for i in range(900, 1797) if i not in anchors)
    renamed = tmp_path / "renamed.parquet"  # as many ids, one of them another
    bench["new"].with_columns(
        pl.when(pl.col("id") == spare).then(5000).otherwise(pl.col("id")).alias("id")
    ).write_parquet(renamed)
    r = cli("disco", "predict", fitted, renamed, "-o", tmp_path / "p.parquet")
    assert r.exit_code == 1 and "897 sample ids, as many as that benchmark" in r.stderr
    bigger = tmp_path / "bigger.parquet"  # the benchmark plus samples it never had
    extra = (
        bench["new"]
        .filter(pl.col("id") == spare)
        .with_columns(pl.lit(9000, dtype=pl.Int64).alias("id"))
    )
    pl.concat([bench["new"], extra]).write_parquet(bigger)
    with pytest.raises(SelectkitMismatchError, match="898 sample ids, more than the 897"):
        disco.predict_files(fitted, bigger, tmp_path / "p.parquet")
    # missing anchors cannot be forced: there is nothing to predict from
    few = tmp_path / "few.parquet"
    bench["new"].filter(~pl.col("id").is_in(list(anchors)[:3])).write_parquet(few)
    r = cli("disco", "predict", fitted, few, "-o", tmp_path / "p.parquet", "--force")
    assert r.exit_code == 1 and "lacks 3 of the 30 anchors" in r.stderr
