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
