"""selectkit scores: training-dynamics difficulty scores on real data, CLI and API."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from selectkit import SelectkitError, read_provenance
from selectkit.dynamics import training_dynamics


@pytest.fixture(scope="module")
def noisy_digits(digits):
    """Digits with 5% of the labels flipped to another class."""
    x, y = digits
    rng = np.random.default_rng(0)
    flipped = rng.random(len(y)) < 0.05
    noisy = np.where(flipped, (y + rng.integers(1, 10, len(y))) % 10, y)
    return x, noisy, flipped


def auroc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties half."""
    diff = scores_pos[:, None] - scores_neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


@pytest.mark.parametrize("model", ["sgd", "mlp"])
def test_flipped_labels_look_hard(noisy_digits, model):
    x, y, flipped = noisy_digits
    dyn = training_dynamics(x, y, epochs=8, model=model, rng=np.random.default_rng(1))
    assert auroc(-dyn["aum"][flipped], -dyn["aum"][~flipped]) > 0.9
    assert auroc(dyn["el2n"][flipped], dyn["el2n"][~flipped]) > 0.9
    assert auroc(dyn["loss"][flipped], dyn["loss"][~flipped]) > 0.9
    assert auroc(dyn["forgetting"][flipped], dyn["forgetting"][~flipped]) > 0.75
    assert np.all(dyn["el2n"] >= 0) and np.all(dyn["loss"] >= 0)
    assert np.all(np.abs(dyn["aum"]) <= 8)  # each epoch adds a margin in [-1, 1]


def test_never_learned_rows_rank_hardest_on_forgetting(noisy_digits):
    x, y, _ = noisy_digits
    dyn = training_dynamics(x, y, epochs=4, rng=np.random.default_rng(0))
    never = ~dyn["final_correct"] & (dyn["forgetting"] == 4)
    assert never.any()
    assert dyn["forgetting"].max() == 4 and np.all(dyn["forgetting"][~never] <= 2)


def test_same_seed_same_scores(digits):
    x, y = digits
    a = training_dynamics(x, y, epochs=3, rng=np.random.default_rng(5))
    b = training_dynamics(x, y, epochs=3, rng=np.random.default_rng(5))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_cli_writes_labelled_rows_only(cli, tmp_path, digits):
    x, y = digits
    labels = pl.Series("label", [None if i % 4 == 0 else int(v) for i, v in enumerate(y)])
    path = tmp_path / "vectors.parquet"
    pl.DataFrame({"id": [f"d{i}" for i in range(len(x))], "embedding": x}).with_columns(
        labels
    ).write_parquet(path)
    out = tmp_path / "dyn.parquet"
    r = cli("scores", path, "-o", out, "--epochs", "3", "--model", "mlp", "--seed", "2")
    assert r.exit_code == 0, r.output
    dyn = pl.read_parquet(out)
    assert dyn.columns == ["id", "aum", "forgetting", "el2n", "loss"]
    assert dyn.height == labels.is_not_null().sum()
    assert "d0" not in dyn.get_column("id").to_list()
    prov = read_provenance(out)
    assert prov["params"]["model"] == "mlp" and prov["seed"] == 2
    assert 0.5 < prov["metrics"]["final_train_accuracy"] <= 1.0


def test_errors(cli, tmp_path, digits):
    x, y = digits
    no_label = tmp_path / "nolabel.parquet"
    pl.DataFrame({"id": range(len(x)), "embedding": x}).write_parquet(no_label)
    r = cli("scores", no_label, "-o", tmp_path / "o.parquet")
    assert r.exit_code == 1 and "needs column 'label'" in r.output
    one_class = tmp_path / "one.parquet"
    pl.DataFrame({"id": range(10), "embedding": x[:10], "label": [1] * 10}).write_parquet(one_class)
    r = cli("scores", one_class, "-o", tmp_path / "o.parquet")
    assert r.exit_code == 1 and "two distinct labels" in r.output
    with pytest.raises(SelectkitError, match="unknown model"):
        training_dynamics(x, y, model="forest", rng=np.random.default_rng(0))
    assert not (tmp_path / "o.parquet").exists()
