"""Issue 12 item 15: typed errors with documented exit codes; option() speaks CLI or Python."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import polars as pl
import pytest
import typer

import selectkit as sk
from selectkit.cli._run import INTERNAL_ERROR, run
from selectkit.errors import cli_messages, option, speaking_cli

IO_DOC = Path(__file__).resolve().parents[1] / "docs" / "io.md"

HIERARCHY = {
    sk.SelectkitError: 1,
    sk.SelectkitUsageError: 2,
    sk.SelectkitDataError: 1,
    sk.SelectkitMismatchError: 1,
    sk.SelectkitInternalError: INTERNAL_ERROR,
}


def test_hierarchy_and_exit_codes():
    assert INTERNAL_ERROR == 70
    for cls, code in HIERARCHY.items():
        assert issubclass(cls, sk.SelectkitError) and cls.exit_code == code
    assert sk.SelectkitMismatchError.__doc__ == (
        "An artefact (manifest, predictor) was applied to data other than the data it was made "
        "from (exit 1)."
    )


def test_io_doc_lists_every_class_with_its_exit_code():
    text = IO_DOC.read_text()
    for cls, code in HIERARCHY.items():
        assert re.search(rf"\| `{cls.__name__}` \| {code} \|", text), cls.__name__


@pytest.mark.parametrize("cls", list(HIERARCHY))
def test_run_turns_each_class_into_its_exit_code(cls, capsys):
    def fail():
        raise cls("column 'x' is wrong; fix it")

    with pytest.raises(typer.Exit) as info:
        run(fail)
    assert info.value.exit_code == cls.exit_code
    err = capsys.readouterr().err
    label = "internal error:" if cls is sk.SelectkitInternalError else "error:"
    assert err.startswith(label) and "column 'x' is wrong" in err


def test_option_renders_flags_in_the_cli_and_arguments_in_python():
    assert option("label_col") == "label_col="
    assert option("k", 5) == "k=5"
    assert option("label_col", "none", python="use_labels=False") == "use_labels=False"
    with cli_messages():
        assert speaking_cli()
        assert option("label_col") == "--label-col"
        assert option("k", 5) == "-k 5"
        assert option("label_col", "none", python="use_labels=False") == "--label-col none"
        assert option("output", cli="-o") == "-o"
    assert not speaking_cli()


def test_cli_rendering_ends_with_the_run_even_when_it_fails():
    with pytest.raises(typer.Exit):
        run(lambda: (_ for _ in ()).throw(sk.SelectkitUsageError("bad")))
    assert option("k") == "k="


def test_cli_rendering_does_not_leak_into_other_threads():
    seen = []
    with cli_messages():
        worker = threading.Thread(target=lambda: seen.append(option("label_col")))
        worker.start()
        worker.join()
    assert seen == ["label_col="]


def test_data_errors_are_data_errors_through_python_and_exit_1(cli, tmp_path):
    table = tmp_path / "t.parquet"
    pl.DataFrame({"id": [1, 2, 2], "embedding": [[0.0], [1.0], [2.0]]}).write_parquet(table)
    with pytest.raises(sk.SelectkitDataError, match="duplicate"):
        sk.load_pool(table)
    r = cli("select", table, "-s", "random", "-b", "1", "-o", tmp_path / "m.parquet")
    assert r.exit_code == 1 and "duplicate" in r.stderr
    # still caught by the base class, as before the subclasses existed
    with pytest.raises(sk.SelectkitError):
        sk.load_pool(table)


def test_usage_errors_exit_2_and_are_usage_errors(cli, tmp_path, digits_parquet):
    r = cli("cluster", digits_parquet, "-k", "3", "--seeding", "nope", "-o", tmp_path / "c.pq")
    assert r.exit_code == 2
    with pytest.raises(sk.SelectkitUsageError):
        sk.cluster_file(digits_parquet, tmp_path / "c.parquet", k=3, seeding="nope")


def test_a_strategy_that_breaks_the_contract_is_an_internal_error(cli, tmp_path, digits_npy):
    from selectkit.strategies.base import _REGISTRY

    @sk.register_strategy("twice", summary="picks row 0 twice (a bug)")
    def twice(pool, budget, rng):
        return sk.Selection(indices=[0] * budget)

    try:
        out = tmp_path / "m.parquet"
        r = cli("select", digits_npy, "-s", "twice", "-b", "2", "-o", out)
        assert r.exit_code == INTERNAL_ERROR
        assert r.stderr.startswith("internal error: strategy 'twice' returned the same row twice")
        assert not out.exists()
        pool = sk.load_pool(str(digits_npy))
        with pytest.raises(sk.SelectkitInternalError, match="same row twice"):
            sk.select(pool, "twice", 2)
    finally:
        _REGISTRY.pop("twice", None)


def test_strategy_parameters_are_named_as_params_from_python():
    from selectkit.errors import param_option

    assert param_option("min_tokens", 5) == "params={'min_tokens': 5}"
    assert param_option("top_k") == "params={'top_k': ...}"
    with cli_messages():
        assert param_option("min_tokens", 5) == "--min-tokens 5"
        assert param_option("top_k") == "--top-k"
