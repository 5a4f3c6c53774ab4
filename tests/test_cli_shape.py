"""The CLI's shape (issue 12 items 8 and 11): one module per command, one declaration per shared
option, usage errors that all read the same, global flags anywhere, help that lists what a
command takes, and output for pipes that is whole lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from selectkit.cli import app

CLI_DIR = Path(__file__).resolve().parents[1] / "selectkit" / "cli"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed entry point in a fresh process (stdout and stderr are pipes, not a tty)."""
    return subprocess.run(
        [sys.executable, "-m", "selectkit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"NO_COLOR": "1", "COLUMNS": "100", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def flat(text: str) -> str:
    """Help text without rich's box borders and wrapping, for phrase searches."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_each_command_lives_in_its_own_module():
    for command in app.registered_commands:
        module = command.callback.__wrapped__.__module__
        # a module name cannot hold a dash: kmq-weights lives in selectkit.cli.kmq_weights
        assert module == f"selectkit.cli.{command.name.replace('-', '_')}", (command.name, module)
    assert {g.name for g in app.registered_groups} == {"al", "disco", "weights"}


@pytest.mark.parametrize(
    "flag", ["--id-col", "--embedding-col", "--label-col", "--seed", "--json", "--input-format"]
)
def test_a_shared_option_is_declared_once(flag):
    """Commands name the shared alias (``IdCol``...); only _options.py spells the flag, save
    for a command whose flag reads differently on purpose (embed's --input-format lists fewer
    formats, as it reads only tables of text)."""
    places = [
        p.name
        for p in sorted(CLI_DIR.glob("*.py"))
        if re.search(rf'typer\.Option\(\s*"{flag}"', p.read_text())
    ]
    allowed = {"_options.py", "embed.py"} if flag == "--input-format" else {"_options.py"}
    own = [p for p in places if p not in allowed | {"al.py", "disco.py"}]
    assert "_options.py" in places and not own, places


def test_usage_errors_from_click_and_from_selectkit_read_the_same(tmp_path, digits_npy):
    click_error = run_cli("select", digits_npy, "-s", "random", "-b", "5")  # no -o
    our_error = run_cli(
        "select", digits_npy, "-s", "randon", "-b", "5", "-o", tmp_path / "m.parquet"
    )
    for r in (click_error, our_error):
        assert r.returncode == 2, r.stderr
        assert r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert lines[0].endswith("(see 'selectkit select --help')"), lines
    assert "Missing option '-o'" in click_error.stderr
    assert "did you mean 'random'" in our_error.stderr
    assert not (tmp_path / "m.parquet").exists()


def test_a_bad_number_is_a_one_line_usage_error():
    r = run_cli("cluster", "x.npy", "-k", "0", "-o", "c.parquet")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: Invalid value for '-k' / '--k': Input should be greater than or equal to 1 "
        "(see 'selectkit cluster --help')"
    ]


def test_global_flags_work_after_the_command(tmp_path, digits_npy):
    before = tmp_path / "before.parquet"
    after = tmp_path / "after.parquet"
    a = run_cli("-q", "select", digits_npy, "-s", "random", "-b", "7", "-o", before)
    b = run_cli("select", digits_npy, "-s", "random", "-b", "7", "-o", after, "-q")
    assert a.returncode == b.returncode == 0, b.stderr
    assert pl.read_parquet(before).equals(pl.read_parquet(after))
    # --debug after the command turns an error's one line into a traceback
    r = run_cli(
        "select", tmp_path / "missing.parquet", "-s", "random", "-b", "7", "-o", after, "--debug"
    )
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_a_double_dash_ends_the_global_flags(tmp_path):
    from selectkit.cli.app import hoist_global_flags

    assert hoist_global_flags(["select", "a", "-q", "--", "-q"]) == [
        "-q",
        "select",
        "a",
        "--",
        "-q",
    ]
    assert hoist_global_flags(["--debug", "embed", "x"]) == ["--debug", "embed", "x"]


def test_bare_selectkit_and_bare_groups_print_help_and_exit_2():
    for args in ([], ["al"], ["disco"]):
        r = run_cli(*args)
        assert r.returncode == 2, args
        assert r.stdout.count("Usage: selectkit") == 1, r.stdout


def test_select_help_lists_every_strategys_options_grouped():
    r = run_cli("select", "--help")
    assert r.returncode == 0
    text = flat(r.stdout)
    assert "Strategy options" in text
    assert re.search(r"ccs: --beta \(auto\), --strata \(50\)", text), text[-2000:]
    assert re.search(r"dsir: --target", text)
    assert re.search(r"semdedup: --threshold \(0\.95\)", text)
    assert "random: none" in text


def test_embed_help_names_only_what_embed_reads_and_writes():
    r = run_cli("embed", "--help")
    text = flat(r.stdout)
    assert "CSV cannot hold a vector column" in text
    assert "jsonl, csv or parquet" in text and "parquet or npy" not in text


def test_install_completion_is_offered():
    r = run_cli("--help")
    assert "--install-completion" in r.stdout and "--show-completion" in r.stdout


def test_strategies_piped_is_whole_lines_one_block_per_strategy():
    from selectkit import list_strategies

    r = run_cli("strategies")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    specs = list_strategies()
    for spec in specs:
        assert f"{spec.name}: {spec.summary}" in lines  # the summary is never wrapped
        for name in spec.params:
            assert any(line.startswith(f"  --{name.replace('_', '-')} ") for line in lines)
    heads = [line for line in lines if line and not line.startswith(" ")]
    assert len(heads) == len(specs)
    assert len(lines) < 12 * len(specs)  # a table wrapped to 80 columns ran to hundreds


def test_neighbors_is_accepted_for_neighbours(tmp_path, digits_npy):
    outs = []
    for spelling in ("--neighbours", "--neighbors"):
        out = tmp_path / f"{spelling[2:]}.parquet"
        r = run_cli(
            "-q",
            "select",
            digits_npy,
            "-s",
            "typiclust",
            "-b",
            "10",
            spelling,
            "7",
            "--max-clusters",
            "10",
            "-o",
            out,
        )
        assert r.returncode == 0, r.stderr
        outs.append(pl.read_parquet(out))
    assert outs[0].equals(outs[1])
