"""`selectkit al simulate --stream`: scikit-learn's digits replayed as a stream, through the
real CLI and the Python API (prequential accuracy, budgets, order, drift, errors)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import selectkit as sk
from selectkit.io.provenance import read_provenance

# what a replay's curves hold besides timings: compared across runs
RESULTS = ["strategy", "budget", "repeat", "rows_seen", "kept", "prequential_accuracy"]


def test_cli_writes_curves_summary_and_plot(cli, digits_parquet, tmp_path):
    out, summary, plot = tmp_path / "c.parquet", tmp_path / "s.csv", tmp_path / "p.png"
    result = cli(
        "al", "simulate", digits_parquet, "--stream", "--label-col", "digit",
        "-s", "random,rand-var-uncertainty", "--budget", "10%,30%", "--repeats", "2",
        "--update-every", "300", "-o", out, "--summary", summary, "--plot", plot,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    curves = pl.read_parquet(out)
    assert set(RESULTS) <= set(curves.columns) and "test_accuracy" in curves.columns
    # 1797 rows, a quarter held out: 1347 stream rows, a curve point per 300
    last = curves.filter(pl.col("rows_seen") == curves["rows_seen"].max())
    assert last.height == 2 * 2 * 2 and last["rows_seen"][0] == 1347
    table = pl.read_csv(summary)
    assert table.height == 4
    for row in table.to_dicts():
        assert abs(row["kept_fraction_mean"] - row["budget"]) <= 0.2 * row["budget"]
        assert 0.1 < row["prequential_accuracy_mean"] <= 1.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    prov = read_provenance(out)
    assert prov["params"]["stream"] is True and prov["params"]["budgets"] == [0.1, 0.3]


def test_the_default_strategies_and_json(cli, digits_parquet, tmp_path):
    out = tmp_path / "c.jsonl"
    result = cli(
        "al", "simulate", digits_parquet, "--stream", "--label-col", "digit", "-m", "sgd",
        "--repeats", "1", "-o", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert {r["strategy"] for r in summary} == {"random", "var-uncertainty", "rand-var-uncertainty"}
    assert {r["budget"] for r in summary} == {0.1}


def _small(digits, n: int = 600):
    x, y = digits
    return x[:n], y[:n], np.array([f"d{i:04d}" for i in range(n)])


@settings(max_examples=4, deadline=None)
@given(shuffle=st.integers(0, 10_000), strategy=st.sampled_from(["split", "quantile", "density"]))
def test_shuffled_input_gives_the_same_replay(digits, shuffle, strategy):
    x, y, ids = _small(digits)
    kw = {"strategies": [strategy], "budgets": [0.2], "repeats": 1, "model": "sgd", "seed": 3}
    one = sk.al_simulate_stream(x, y, ids=ids, **kw)
    perm = np.random.default_rng(shuffle).permutation(len(y))
    two = sk.al_simulate_stream(x[perm], y[perm], ids=ids[perm], **kw)
    assert one.curves.select(RESULTS).equals(two.curves.select(RESULTS))


def test_file_order_follows_the_input(digits):
    x, y, ids = _small(digits)
    kw = {"strategies": ["random"], "budgets": [0.3], "repeats": 1, "model": "sgd"}
    base = sk.al_simulate_stream(x, y, ids=ids, order="file", test_size=None, **kw)
    # the first rows of the file are the first rows of the stream: sorted by label they are
    # a stream whose early predictions all miss
    order = np.argsort(y, kind="stable")
    sorted_run = sk.al_simulate_stream(
        x[order], y[order], ids=ids[order], order="file", test_size=None, **kw
    )
    assert base.curves["rows_seen"].max() == len(y)
    assert sorted_run.curves["prequential_accuracy"][-1] < base.curves["prequential_accuracy"][-1]


def test_random_keeps_the_lines_selectkit_stream_keeps(digits, tmp_path):
    """The replay's policies are the command's: with no model in the loop (random reads no
    probabilities), the replay keeps what `selectkit stream -s random` keeps, update by update
    (every 10 rows: the cumulative kept counts agree at each of the 60 points)."""
    import io

    x, y, ids = _small(digits)
    sim = sk.al_simulate_stream(
        x, y, ids=ids, strategies=["random"], budgets=[0.2], repeats=1, test_size=None,
        order="file", model="sgd", update_every=10,
    )  # fmt: skip
    seed = sim.curves["seed"][0]
    lines = b"".join(b'{"id": "%s"}\n' % i.encode() for i in ids)
    log = tmp_path / "d.parquet"
    sk.stream_select(
        [io.BytesIO(lines)], io.BytesIO(), strategy="random", budget=0.2, seed=seed, log=str(log)
    )
    keep = pl.read_parquet(log)["keep"].to_numpy()
    at = sim.curves["rows_seen"].to_numpy()
    assert sim.curves["kept"].to_list() == np.cumsum(keep)[at - 1].tolist()


def test_drift_halfway_lowers_the_accuracy_after_it(digits):
    x, y = digits
    kw = {
        "strategies": ["rand-var-uncertainty"],
        "budgets": [0.3],
        "repeats": 1,
        "model": "sgd",
        "update_every": 100,
    }
    calm = sk.al_simulate_stream(x, y, **kw)
    drift = sk.al_simulate_stream(x, y, drift_at=0.5, **kw)
    row = drift.summary.to_dicts()[0]
    assert "after_drift_accuracy_mean" in row
    assert row["prequential_accuracy_mean"] < calm.summary["prequential_accuracy_mean"][0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "margin,random"], "'margin' is not a stream strategy"),
        (["--drift-at", "1.5"], "--drift-at 1.5 must lie in (0, 1)"),
        (["--order", "time"], "--order time must be id or file"),
        (["--budget", "0"], "must be in (0, 1]"),
        (["--budget", "10%,10%"], "each budget may be given once"),
        (["-m", "sgd", "--model-param", "C=3"], "model 'sgd' takes the parameter alpha"),
        (["-p", "split.ratio=0.3", "-s", "split"], "has no parameter 'ratio'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli, digits_parquet, tmp_path, args, message):
    out = tmp_path / "c.parquet"
    result = cli(
        "al", "simulate", digits_parquet, "--stream", "--label-col", "digit", "-o", out, *args
    )
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_stream_options_without_stream_are_refused(cli, digits_parquet, tmp_path):
    result = cli(
        "al", "simulate", digits_parquet, "--label-col", "digit", "--budget", "10%",
        "-o", tmp_path / "c.parquet",
    )  # fmt: skip
    assert result.exit_code == 2 and "are for --stream" in result.stderr


def test_a_missing_label_is_a_data_error(cli, digits, tmp_path):
    x, y = digits
    labels = y[:200].astype(object)
    labels[7] = None
    path = tmp_path / "d.parquet"
    frame = {"id": np.arange(200), "embedding": x[:200], "label": pl.Series(labels.tolist())}
    pl.DataFrame(frame).write_parquet(path)
    result = cli("al", "simulate", path, "--stream", "-o", tmp_path / "c.parquet")
    assert result.exit_code == 1 and "null in 1 rows" in result.stderr
