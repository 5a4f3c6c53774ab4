"""Shared fixtures: real data from data_samples/ and scikit-learn's bundled digits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from selectkit.cli import app

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data_samples"
RT = DATA / "rotten_tomatoes.jsonl"
FORTUNES = DATA / "fortunes.jsonl"


@pytest.fixture(scope="session")
def rt_path() -> Path:
    return RT


@pytest.fixture(scope="session")
def rt_small(tmp_path_factory) -> Path:
    """The first 400 Rotten Tomatoes rows as JSONL (fast CLI tests)."""
    path = tmp_path_factory.mktemp("data") / "rt400.jsonl"
    with open(RT, "rb") as src, open(path, "wb") as dst:
        for _ in range(400):
            dst.write(src.readline())
    return path


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: (1797, 64) float32 scaled to [0, 1], labels 0-9."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


@pytest.fixture(scope="session")
def digits_npy(tmp_path_factory, digits) -> Path:
    path = tmp_path_factory.mktemp("data") / "digits.npy"
    np.save(path, digits[0])
    return path


@pytest.fixture(scope="session")
def digits_parquet(tmp_path_factory, digits) -> Path:
    path = tmp_path_factory.mktemp("data") / "digits.parquet"
    x, y = digits
    pl.DataFrame(
        {"id": [f"d{i:04d}" for i in range(len(x))], "embedding": x, "digit": y}
    ).write_parquet(path)
    return path


@pytest.fixture(scope="session")
def rt_emb(tmp_path_factory, rt_small) -> Path:
    """Embeddings of rt_small made through the CLI."""
    out = tmp_path_factory.mktemp("emb") / "emb.parquet"
    result = CliRunner().invoke(app, ["-q", "embed", str(rt_small), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


class Cli:
    """Run the real Typer app in-process; returns (exit code, stdout, stderr)."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | bytes | None = None):
        result = self.runner.invoke(app, ["-q", *map(str, args)], input=input)
        return result

    def json(self, *args: str) -> dict:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture(autouse=True)
def _no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    yield


def leftovers(folder: Path) -> list[str]:
    """Temporary files an interrupted or failed write might have left behind."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp"))


os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def full_frame() -> pl.DataFrame:
    """A pool table with every conventional column, from real data (digits, Rotten Tomatoes
    text): the example data of ``selectkit.testing`` (see ``wide_frame`` there)."""
    from selectkit.testing import wide_frame

    return wide_frame()


@pytest.fixture(scope="session")
def long_frame() -> pl.DataFrame:
    """Long-format predictions (one row per model and id) of six real classifiers on all of
    digits, label = null: ``selectkit.testing.long_frame``."""
    from selectkit.testing import long_frame as long_predictions

    return long_predictions()


# ---------------------------------------------------------------------------------------------
# Ray: one real two-node cluster for the whole run (tests/_ray_cluster.py says how and why).
# A test needs it by being marked `ray` or by using `ray_cluster`; a session fixture of another
# file that runs the Ray engine must request `ray_cluster` itself.

from tests import _ray_cluster  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    _ray_cluster.check_required()
    _ray_cluster.configure_controller(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    _ray_cluster.unconfigure(config)


@pytest.hookimpl(tryfirst=True)  # before -m selection reads the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _ray_cluster.mark_items(config, items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    return _ray_cluster.make_scheduler(config, log)


@pytest.fixture(scope="session")
def ray_cluster():
    """The two-node cluster (head + one worker node, 1 CPU each), RAY_ADDRESS exported;
    started on first use, stopped (no process left) when the session ends."""
    if not _ray_cluster.ray_installed():
        message = f"Ray is not installed: {_ray_cluster.INSTALL_HINT}"
        if _ray_cluster.ray_required():
            pytest.fail(message)
        pytest.skip(message)
    cluster = _ray_cluster.start(REPO)
    yield cluster
    # what outlives Ray's own shutdown is killed by pid and counted in the run's summary
    killed = cluster.stop()
    _ray_cluster.record(cluster, _RAY_TESTS_RUN[0], killed)


_RAY_TESTS_RUN = [0]
_RAY_REPORTS: dict[str, dict] = {}


@pytest.fixture(autouse=True)
def _ray_for_marked_tests(request):
    if request.node.get_closest_marker("ray") is not None:
        request.getfixturevalue("ray_cluster")
        _RAY_TESTS_RUN[0] += 1


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown stopped the cluster
def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _ray_cluster.TIMINGS:
        return
    if hasattr(session.config, "workeroutput"):  # an xdist worker: tell the controller
        session.config.workeroutput[_ray_cluster.SUMMARY_KEY] = dict(_ray_cluster.TIMINGS)
    else:
        _RAY_REPORTS["this process"] = dict(_ray_cluster.TIMINGS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    timings = getattr(node, "workeroutput", {}).get(_ray_cluster.SUMMARY_KEY)
    if timings:
        _RAY_REPORTS[node.gateway.id] = timings


def pytest_terminal_summary(terminalreporter) -> None:
    for line in _ray_cluster.summary_lines(_RAY_REPORTS):
        terminalreporter.write_line(line)
