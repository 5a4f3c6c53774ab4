import pytest
from hypothesis import given
from hypothesis import strategies as st

from selectkit.budget import parse_budget
from selectkit.errors import SelectkitError, SelectkitUsageError


@pytest.mark.parametrize(
    ("text", "pool", "expected"),
    [
        ("10", 100, 10),
        (10, 100, 10),
        ("0.05", 1000, 50),
        ("5%", 1000, 50),
        (".5", 9, 5),
        ("100%", 7, 7),
        (1.0, 7, 7),
        ("0.001", 10, 1),
        ("12.5%", 8, 1),
    ],
)
def test_budget_forms(text, pool, expected):
    assert parse_budget(text, pool) == expected


@pytest.mark.parametrize("text", ["abc", "", "1e3", "5 %", "ten", "-5", "-0.1", "150%", "1.5"])
def test_unparsable_budget_is_usage_error(text):
    with pytest.raises(SelectkitUsageError):
        parse_budget(text, 100)


@pytest.mark.parametrize("text", ["1.0", "1.", "1.00"])
def test_one_point_zero_is_ambiguous(text):
    with pytest.raises(SelectkitUsageError, match="ambiguous: budget=1 picks one row"):
        parse_budget(text, 100)


def test_one_point_zero_on_the_command_line_names_both_spellings(cli, tmp_path, digits_npy):
    out = tmp_path / "m.parquet"
    r = cli("select", digits_npy, "-s", "random", "-b", "1.0", "-o", out)
    assert r.exit_code == 2
    assert "--budget 1 picks one row and --budget 100% every row" in r.stderr
    assert not out.exists()
    assert cli("select", digits_npy, "-s", "random", "-b", "1", "-o", out).exit_code == 0


@pytest.mark.parametrize("text", ["0", "0.0", "0%"])
def test_zero_budget_fails(text):
    with pytest.raises(SelectkitError, match="selects nothing"):
        parse_budget(text, 100)


def test_budget_above_pool_names_the_pool():
    with pytest.raises(SelectkitError, match="larger than the pool of 10"):
        parse_budget("11", 10)


@given(pool=st.integers(1, 10**9), frac=st.floats(0.0, 1.0, exclude_min=True))
def test_fraction_budget_is_within_pool(pool, frac):
    count = parse_budget(frac, pool)
    assert 1 <= count <= pool
    assert abs(count - frac * pool) <= max(1.0, 0.5 + 1e-9 * pool)


@given(pool=st.integers(1, 10**6), data=st.data())
def test_count_budget_roundtrip(pool, data):
    count = data.draw(st.integers(1, pool))
    assert parse_budget(str(count), pool) == count


@given(pool=st.integers(1, 10**6), pct=st.integers(1, 100))
def test_percent_is_monotone(pool, pct):
    lo = parse_budget(f"{pct}%", pool)
    hi = parse_budget(f"{min(pct + 1, 100)}%", pool)
    assert lo <= hi
