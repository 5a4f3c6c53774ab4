"""selectkit scores --gradients: projected last-layer gradient features, CLI and API, and the
omp pipeline on them (real data: digits, Rotten Tomatoes embedded with `selectkit embed`)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from selectkit import Pool, SelectkitUsageError, read_provenance, scores_for_pool
from selectkit.dynamics import gradient_features, gradient_projection


def brute_gradients(p, target, z, seed, dim):
    """vec((p - onehot(y)) (x) [z, 1]) @ R with R formed in full: the slow obvious way."""
    c = p.shape[1]
    e = p.astype(np.float64).copy()
    e[np.arange(len(e)), target] -= 1.0
    z1 = np.hstack([z, np.ones((len(z), 1))])
    g = np.einsum("ic,ij->icj", e, z1).reshape(len(z), -1)  # class-major, n x C(h+1)
    r = np.vstack([gradient_projection(seed, k, z1.shape[1], dim) for k in range(c)])
    return g @ r.astype(np.float64)


def test_linear_gradients_equal_brute_force(digits):
    x, y = digits
    x, y = x[:300], y[:300]
    model = LogisticRegression(max_iter=300).fit(x, y)
    got = gradient_features(model, x, y, dim=24, seed=5)
    want = brute_gradients(model.predict_proba(x), y, x, 5, 24)
    assert got.dtype == np.float32 and got.shape == (300, 24)
    assert np.allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_gradients_use_the_hidden_layer(digits):
    x, y = digits
    x, y = x[:200], y[:200]
    model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0).fit(x, y)
    hidden = np.maximum(x @ model.coefs_[0] + model.intercepts_[0], 0.0)
    got = gradient_features(model, x, y, dim=16, seed=1)
    want = brute_gradients(model.predict_proba(x), y, hidden, 1, 16)
    assert np.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_projection_is_rademacher_and_depends_on_seed_and_class_only():
    a = gradient_projection(3, 1, 65, 512)
    assert np.array_equal(a, gradient_projection(3, 1, 65, 512))
    assert set(np.unique(a * np.sqrt(512)).round(6)) == {-1.0, 1.0}
    assert not np.array_equal(a, gradient_projection(3, 2, 65, 512))
    assert not np.array_equal(a, gradient_projection(4, 1, 65, 512))
    # JL: norms are kept in expectation (here within a few percent on average)
    g = np.random.default_rng(0).normal(size=(200, 65))
    ratio = np.linalg.norm(g @ a, axis=1) / np.linalg.norm(g, axis=1)
    assert abs(ratio.mean() - 1.0) < 0.05


def test_api_gradients_table_and_bounds(digits):
    x, y = digits
    pool = Pool.from_arrays(x[:400], labels=y[:400])
    table = scores_for_pool(pool, epochs=2, gradients=True, grad_dim=32)
    assert table.columns == ["id", "gradient"] and table.height == 400
    assert table.schema["gradient"] == pl.Array(pl.Float32, 32)
    again = scores_for_pool(pool, epochs=2, gradients=True, grad_dim=32)
    assert table.equals(again)
    for bad in (0, 1 << 17):
        with pytest.raises(SelectkitUsageError, match="grad_dim"):
            scores_for_pool(pool, epochs=2, gradients=True, grad_dim=bad)
    with pytest.raises(SelectkitUsageError, match="gradients=True"):
        scores_for_pool(pool, epochs=2, grad_dim=32)


def test_cli_pipeline_on_digits_gradients_beats_random(cli, tmp_path, digits):
    x, y = digits
    train = tmp_path / "train.parquet"
    pl.DataFrame({"id": np.arange(len(x)), "embedding": x, "label": y}).write_parquet(train)
    grads = tmp_path / "grads.parquet"
    r = cli("scores", train, "--label-col", "label", "--gradients", "--grad-dim", "128",
            "--epochs", "3", "-o", grads)  # fmt: skip
    assert r.exit_code == 0, r.output
    prov = read_provenance(grads)
    assert prov["params"]["grad_dim"] == 128 and prov["params"]["gradients"] is True
    clusters = tmp_path / "clusters.parquet"
    r = cli("cluster", grads, "--vector-col", "gradient", "-k", "10", "-o", clusters)
    assert r.exit_code == 0, r.output
    out = tmp_path / "m.parquet"
    r = cli("select", grads, clusters, "--strategy", "omp", "--vector-col", "gradient",
            "--budget", "5%", "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    g = pl.read_parquet(grads)["gradient"].to_numpy().astype(np.float64)
    m = pl.read_parquet(out).join(pl.read_parquet(grads).with_row_index("row"), on="id")
    total = g.sum(axis=0)
    est = (m["weight"].to_numpy()[:, None] * g[m["row"].to_numpy()]).sum(axis=0)
    omp_err = np.linalg.norm(est - total) / np.linalg.norm(total)
    rng = np.random.default_rng(0)
    rand = []
    for _ in range(5):
        idx = rng.choice(len(g), m.height, replace=False)
        rand.append(np.linalg.norm(g[idx].sum(axis=0) * len(g) / m.height - total))
    assert omp_err < np.mean(rand) / np.linalg.norm(total) / 2
    assert omp_err == pytest.approx(read_provenance(out)["metrics"]["omp_error"], rel=1e-3)


def test_cli_gradients_of_real_text_embeddings(cli, tmp_path, rt_small, rt_emb):
    labels = tmp_path / "labels.parquet"
    pl.read_ndjson(rt_small).select("id", "label").write_parquet(labels)
    grads = tmp_path / "grads.parquet"
    r = cli("scores", rt_emb, labels, "--label-col", "label", "--gradients", "-o", grads)
    assert r.exit_code == 0, r.output
    table = pl.read_parquet(grads)
    assert table.columns == ["id", "gradient"] and table.height == 400
    assert table.schema["gradient"] == pl.Array(pl.Float32, 512)  # the default --grad-dim
    assert np.isfinite(table["gradient"].to_numpy()).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gradients", "--grad-dim", "0"], "--grad-dim"),
        (["--gradients", "--grad-dim", "70000"], "--grad-dim"),
        (["--grad-dim", "64"], "add --gradients"),
    ],
)
def test_cli_bad_grad_dim_exits_2(cli, tmp_path, digits_parquet, args, message):
    out = tmp_path / "g.parquet"
    r = cli("scores", digits_parquet, "--label-col", "digit", *args, "-o", out)
    assert r.exit_code == 2 and message in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2 and not out.exists()


def test_shuffled_rows_give_the_same_gradients_per_id(digits):
    x, y = digits
    x, y = x[:300], y[:300]
    ids = [f"r{i:03d}" for i in range(300)]
    perm = np.random.default_rng(2).permutation(300)
    a = scores_for_pool(Pool.from_arrays(x, ids=ids, labels=y), epochs=2, gradients=True,
                        grad_dim=16)  # fmt: skip
    b = scores_for_pool(
        Pool.from_arrays(x[perm], ids=[ids[i] for i in perm], labels=y[perm]),
        epochs=2,
        gradients=True,
        grad_dim=16,
    )
    assert a.equals(b)  # the model trains on the rows in id order; the output is in id order
    dyn_a = scores_for_pool(Pool.from_arrays(x, ids=ids, labels=y), epochs=2)
    dyn_b = scores_for_pool(
        Pool.from_arrays(x[perm], ids=[ids[i] for i in perm], labels=y[perm]), epochs=2
    )
    assert dyn_a.equals(dyn_b)
