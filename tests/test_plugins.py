"""Third-party strategies register through the ``selectkit.strategies`` entry-point group."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_entry_point_plugin_is_listed_and_runs(tmp_path):
    """A real installed-distribution layout on sys.path: a module plus its dist-info with an
    entry_points.txt; a fresh interpreter lists the strategy and runs it through the CLI."""
    (tmp_path / "my_plugin.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from selectkit import Param, Selection, register_strategy

            @register_strategy("every_other", summary="Every other unlabelled row.",
                               params={"offset": Param(int, 0, "first row")})
            def every_other(pool, budget, rng, offset=0):
                rows = pool.candidates[offset::2][:budget]
                return Selection(indices=rows, scores=np.arange(budget, dtype=float))
            """
        )
    )
    dist = tmp_path / "my_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[selectkit.strategies]\nevery_other = my_plugin\n")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(f'{{"id": {i}, "embedding": [{i}.0]}}\n' for i in range(10)))
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        sys.argv = ["selectkit", "-q", "select", {str(data)!r}, "-s", "every_other", "-b", "3",
                    "-p", "offset=1", "-o", "-"]
        from selectkit.cli import entrypoint
        entrypoint()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert [line.split('"id":')[1].split(",")[0] for line in proc.stdout.splitlines()] == [
        "1",
        "3",
        "5",
    ]


def test_broken_plugin_does_not_break_builtins(tmp_path):
    dist = tmp_path / "broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[selectkit.strategies]\nbroken = no_such_module_xyz\n")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from selectkit import list_strategies
        print(",".join(s.name for s in list_strategies()))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "kcenter" in proc.stdout and "failed to load" in proc.stderr


PLUGIN = textwrap.dedent(
    """
    import numpy as np
    from selectkit import Param, Selection, register_strategy

    @register_strategy("every_other", summary="Every other unlabelled row.",
                       needs=("embedding",),
                       params={"offset": Param(int, 0, "first row", low=0, high=1)})
    def every_other(pool, budget, rng, offset=0):
        rows = np.concatenate([pool.candidates[offset::2], pool.candidates[1 - offset::2]])
        return Selection(indices=rows[:budget], scores=np.arange(budget, dtype=float))
    """
)


def _plugin_repo(tmp_path, plugin_source: str):
    """A plug-in's own repository: its module and a test file that runs selectkit's contract
    checks on the plug-in's strategy with ``parametrize_with_checks``."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "my_plugin.py").write_text(plugin_source)
    (repo / "test_my_plugin.py").write_text(
        textwrap.dedent(
            """
            import my_plugin  # registers every_other
            from selectkit.testing import parametrize_with_checks

            @parametrize_with_checks(["every_other"])
            def test_contract(strategy, check):
                check(strategy)
            """
        )
    )
    return repo


def _pytest(repo, *args: str):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *args, str(repo)],
        capture_output=True,
        text=True,
        cwd=repo,
    )


def test_plugin_runs_the_contract_checks_from_its_own_repository(tmp_path):
    from selectkit.testing import CHECKS

    proc = _pytest(_plugin_repo(tmp_path, PLUGIN))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(CHECKS)} passed" in proc.stdout
    assert "test_contract[every_other-budget_exact]" in proc.stdout
    assert "test_contract[every_other-invalid_params_refused]" in proc.stdout


def test_plugin_that_breaks_the_contract_fails_the_named_checks(tmp_path):
    """A plug-in that ignores labels and the row order: the checks that say so fail."""
    broken = PLUGIN.replace(
        "rows = np.concatenate([pool.candidates[offset::2], pool.candidates[1 - offset::2]])",
        "rows = np.arange(len(pool))  # every row, labelled or not",
    )
    proc = _pytest(_plugin_repo(tmp_path, broken), "-k", "labelled_rows or invalid_params")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED test_my_plugin.py::test_contract[every_other-labelled_rows_never_picked]" in (
        proc.stdout
    )
    assert "PASSED test_my_plugin.py::test_contract[every_other-invalid_params_refused]" in (
        proc.stdout
    )


def test_docs_plugin_check_example_runs_as_written(tmp_path):
    """The plug-in test file in docs/strategies.md ("Checking it: selectkit.testing"), saved and
    run as the docs say, passes every check, and the docs' shown count is the real one."""
    from pathlib import Path

    from selectkit.testing import CHECKS

    docs = (Path(__file__).parents[1] / "docs" / "strategies.md").read_text()
    section = docs.split("### Checking it: `selectkit.testing`", 1)[1]
    code, after = section.split("```python\n", 1)[1].split("```\n", 1)
    shown = after.split("```\n", 1)[1].split("```", 1)[0]
    assert f"{len(CHECKS)} passed" in shown
    (tmp_path / "test_far_from_mean.py").write_text(code)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_far_from_mean.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(CHECKS)} passed" in proc.stdout
