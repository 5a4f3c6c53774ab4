"""`selectkit stream` on a real labelled stream: scikit-learn's digits, with the class
probabilities of a model fitted on a prefix, replayed line by line."""

from __future__ import annotations

import io
import itertools
import json
import re
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit.stream import STREAM_STRATEGIES, stream_select

PROBA_STRATEGIES = [n for n, (reads, _) in STREAM_STRATEGIES.items() if "proba" in reads]


@pytest.fixture(scope="module")
def stream_lines(digits) -> list[bytes]:
    """Digits rows 300.. in a fixed shuffled order, each a JSON line with id, label, the
    probabilities of a logistic regression fitted on rows 0..299, a utility and its pixels."""
    from sklearn.linear_model import LogisticRegression

    x, y = digits
    model = LogisticRegression(max_iter=300).fit(x[:300], y[:300])
    rest = np.random.default_rng(0).permutation(np.arange(300, len(x)))
    proba = model.predict_proba(x[rest])
    lines = []
    for row, p in zip(rest.tolist(), proba, strict=True):
        p = p / p.sum()
        record = {
            "id": f"d{row:04d}",
            "label": int(y[row]),
            "proba": [round(float(v), 6) for v in p],
            "util": round(float(1.0 - p.max()), 6),
            "emb": [round(float(v), 4) for v in x[row, ::4]],
        }
        lines.append((json.dumps(record) + "\n").encode())
    # the rounded probabilities still sum to 1 within selectkit's tolerance
    return lines


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory, stream_lines) -> Path:
    path = tmp_path_factory.mktemp("stream") / "digits.jsonl"
    path.write_bytes(b"".join(stream_lines * 3))  # ~4.5k lines: windows of 500 to check
    return path


def select_bytes(path: Path, **kw) -> tuple[bytes, dict]:
    """Kept bytes and summary of one stream_select run over ``path``."""
    out = io.BytesIO()
    summary = stream_select([str(path)], out, **kw)
    return out.getvalue(), summary


def kw_for(strategy: str) -> dict:
    kw: dict = {"strategy": strategy}
    if strategy == "quantile":
        kw["score_col"] = "util"
    else:
        kw["proba_col"] = "proba"
    if strategy == "density":
        kw["embedding_col"] = "emb"
    return kw


@pytest.mark.parametrize("strategy", list(STREAM_STRATEGIES))
def test_kept_lines_are_input_lines_in_order_byte_for_byte(strategy, stream_file):
    # fixed uncertainty's threshold 1/C + b (1 - 1/C) is 0.19 at 10%: a confident model
    # never goes that low, so it gets a budget it can spend
    budget = "60%" if strategy == "fixed-uncertainty" else "10%"
    kept, summary = select_bytes(stream_file, budget=budget, **kw_for(strategy))
    lines = stream_file.read_bytes().splitlines(keepends=True)
    got = kept.splitlines(keepends=True)
    assert summary["kept"] == len(got) > 0
    # a subsequence of the input, in input order
    it = iter(lines)
    assert all(any(g == line for line in it) for g in got)


@pytest.mark.parametrize("budget", [0.05, 0.1, 0.3])
@pytest.mark.parametrize("strategy", ["rand-var-uncertainty", "var-uncertainty", "quantile"])
def test_kept_fraction_tracks_the_budget_in_every_window_of_500(
    strategy, budget, stream_file, tmp_path
):
    log = tmp_path / "log.parquet"
    select_bytes(stream_file, budget=budget, log=str(log), **kw_for(strategy))
    keep = pl.read_parquet(log)["keep"].to_numpy()
    windows = keep[: keep.size // 500 * 500].reshape(-1, 500).mean(axis=1)
    # the first window pays for the budget estimate's warm-up (θ0 = 1 keeps until it bites)
    assert np.all(np.abs(windows[1:] - budget) <= 0.2 * budget), windows
    assert abs(keep.mean() - budget) <= 0.2 * budget


@settings(max_examples=12, deadline=None)
@given(
    strategy=st.sampled_from(list(STREAM_STRATEGIES)),
    cut=st.integers(1, 4000),
    seed=st.integers(0, 3),
)
def test_feeding_the_stream_in_two_pieces_with_state_decides_the_same(
    strategy, cut, seed, stream_file, tmp_path_factory
):
    folder = tmp_path_factory.mktemp("resume")
    lines = stream_file.read_bytes().splitlines(keepends=True)
    first, second = folder / "a.jsonl", folder / "b.jsonl"
    first.write_bytes(b"".join(lines[:cut]))
    second.write_bytes(b"".join(lines[cut:]))
    kw = {"budget": 0.1, "seed": seed, **kw_for(strategy)}
    whole, _ = select_bytes(stream_file, **kw)
    state = str(folder / "s.json")
    a, _ = select_bytes(first, state=state, **kw)
    b, summary = select_bytes(second, state=state, **kw)
    assert a + b == whole
    assert summary["lines_total"] == len(lines)


class Trickle:
    """A reader that hands out its bytes in the chunk sizes given (a slow producer's pipe)."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes, self.pos = data, sizes, 0

    def read1(self, n: int = -1) -> bytes:
        size = self.sizes[self.pos % len(self.sizes)] if self.sizes else n
        chunk = self.data[: min(size, n)]
        self.data = self.data[len(chunk) :]
        self.pos += 1
        return chunk


@settings(max_examples=10, deadline=None)
@given(
    sizes=st.lists(st.integers(7, 5000), min_size=1, max_size=6),
    strategy=st.sampled_from(PROBA_STRATEGIES),
)
def test_decisions_do_not_depend_on_how_the_input_arrives(sizes, strategy, stream_lines):
    data = b"".join(stream_lines[:400])
    kw = {"budget": 0.2, **kw_for(strategy)}
    one, two = io.BytesIO(), io.BytesIO()
    stream_select([io.BytesIO(data)], one, **kw)
    stream_select([Trickle(data, sizes)], two, **kw)
    assert one.getvalue() == two.getvalue()


def test_log_has_a_row_per_line_and_matches_the_output(stream_file, tmp_path):
    log = tmp_path / "d.parquet"
    kept, summary = select_bytes(stream_file, budget=0.1, log=str(log), proba_col="proba")
    frame = pl.read_parquet(log)
    lines = stream_file.read_bytes().splitlines(keepends=True)
    assert frame.height == len(lines) and frame["line"].to_list() == list(range(1, len(lines) + 1))
    chosen = [lines[i] for i in np.flatnonzero(frame["keep"].to_numpy())]
    assert b"".join(chosen) == kept
    assert frame["id"][0] == json.loads(lines[0])["id"]
    from selectkit.io.provenance import read_provenance

    prov = read_provenance(log)
    assert prov["command"] == "stream" and prov["metrics"]["kept"] == summary["kept"]


def test_max_keep_is_a_hard_cap(stream_file):
    kept, summary = select_bytes(stream_file, budget=0.5, max_keep=37, proba_col="proba")
    assert summary["kept"] == 37 == len(kept.splitlines())


def test_cli_pipes_kept_lines_to_stdout_and_nothing_else(cli, stream_file):
    data = stream_file.read_bytes()
    result = cli("stream", "--proba-col", "proba", "--budget", "10%", input=data)
    assert result.exit_code == 0, result.stderr
    got = result.stdout_bytes.splitlines(keepends=True)
    assert got and set(got) <= set(data.splitlines(keepends=True))
    assert result.stderr == ""  # -q: no summary; stdout holds only kept lines


def test_csv_stream_keeps_its_header_once(cli, stream_lines, tmp_path):
    rows = [json.loads(line) for line in stream_lines[:800]]
    csv_path = tmp_path / "s.csv"
    pl.DataFrame({"id": [r["id"] for r in rows], "util": [r["util"] for r in rows]}).write_csv(
        csv_path
    )
    result = cli(
        "stream", str(csv_path), str(csv_path), "-s", "quantile", "--score-col", "util", "-b", "0.2"
    )
    assert result.exit_code == 0, result.stderr
    out = result.stdout_bytes.splitlines()
    assert out[0] == b"id,util" and out.count(b"id,util") == 1
    assert 0.1 * 1600 < len(out) - 1 < 0.3 * 1600


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"id": "x", proba\n', r"stdin line 4: not valid JSON"),
        (
            b'{"id": "x", "proba": [0.7, 0.7, 0, 0, 0, 0, 0, 0, 0, 0]}\n',
            r"stdin line 4: 'proba' is not a probability distribution",
        ),
        (b'{"id": "x"}\n', r"stdin line 4: 'proba' is missing"),
        (b"[1, 2]\n", r"stdin line 4: not a JSON object \(it is a list\)"),
        (b'{"id": "x", "proba": NaN}\n', r"stdin line 4: not valid JSON \(NaN is not JSON"),
        (b'{"id": "x", "proba": "0.5"}\n', r"stdin line 4: 'proba' is \"0.5\", not a list"),
    ],
)
def test_a_malformed_line_stops_with_its_number_after_the_lines_before_it(
    cli, stream_lines, line, message, tmp_path
):
    data = b"".join(stream_lines[:3]) + line + b"".join(stream_lines[3:6])
    keep_all = ["stream", "-s", "random", "--proba-col", "proba", "-b", "1"]
    state = tmp_path / "s.json"
    assert cli(*keep_all, "--state", str(state)).exit_code == 0
    before = state.read_bytes()
    result = cli(*keep_all, "--state", str(state), input=data)
    assert result.exit_code == 1
    assert re.search(message, result.stderr) and "--on-error skip" in result.stderr
    assert result.stdout_bytes == b"".join(stream_lines[:3])  # decided before the bad line
    assert state.read_bytes() == before  # a failed run leaves the state as it was
    skipped = cli(*keep_all, "--on-error", "skip", input=data)
    assert skipped.exit_code == 0
    assert skipped.stdout_bytes == b"".join(stream_lines[:6])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "var-uncertainty", "--score-col", "util"], "reads class probabilities"),
        (["-s", "quantile"], "ranks a utility"),
        (["-s", "density", "--proba-col", "proba"], "--embedding-col"),
        (["-s", "nope", "--proba-col", "proba"], "unknown stream strategy 'nope'"),
        (["--proba-col", "proba", "-b", "0"], "must be in (0, 1]"),
        (["--proba-col", "proba", "-b", "ten"], "is not a fraction"),
        (["--proba-col", "proba", "--step", "1.5"], "step"),
    ],
)
def test_usage_errors_are_one_line_exit_2(cli, args, message, stream_lines):
    result = cli("stream", *args, input=b"".join(stream_lines[:5]))
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and result.stdout_bytes == b""


def test_a_state_from_other_options_is_refused(cli, stream_file, tmp_path):
    state = tmp_path / "s.json"
    assert (
        cli("stream", str(stream_file), "--proba-col", "proba", "--state", str(state)).exit_code
        == 0
    )
    before = state.read_bytes()
    result = cli(
        "stream", str(stream_file), "--proba-col", "proba", "-b", "20%", "--state", str(state)
    )
    assert result.exit_code == 2 and "budget=0.1" in result.stderr and "budget=0.2" in result.stderr
    assert state.read_bytes() == before


class Repeat:
    """A reader that replays ``lines`` ``copies`` times without holding the whole stream."""

    def __init__(self, lines: list[bytes], copies: int) -> None:
        self.lines, self.left, self.pos = lines, copies * len(lines), 0

    def read1(self, n: int = -1) -> bytes:
        take = min(self.left, 500)
        chunk = [self.lines[(self.pos + i) % len(self.lines)] for i in range(take)]
        self.pos, self.left = self.pos + take, self.left - take
        return b"".join(chunk)


class _Sink(io.RawIOBase):
    def write(self, b) -> int:
        return len(b)


@pytest.mark.parametrize("strategy", ["quantile", "density"])
def test_memory_stays_flat_as_the_stream_grows(strategy, stream_lines):
    def peak(copies: int) -> int:
        tracemalloc.start()
        stream_select([Repeat(stream_lines, copies)], _Sink(), **kw_for(strategy))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(2), peak(16)  # ~3k vs ~24k lines
    assert large < 1.3 * small, (small, large)


def test_sigterm_mid_stream_keeps_state_and_log_untouched(cli, stream_lines, tmp_path):
    state, log = tmp_path / "s.json", tmp_path / "d.parquet"
    keep_all = ["stream", "-s", "random", "--proba-col", "proba", "-b", "1"]
    assert cli(*keep_all, "--state", str(state), input=stream_lines[0]).exit_code == 0
    before = state.read_bytes()
    command = [
        sys.executable,
        "-m",
        "selectkit",
        *keep_all,
        "--state",
        str(state),
        "--log",
        str(log),
    ]
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(b"".join(stream_lines[1:5]))
    proc.stdin.flush()
    # the kept lines arrive while the stream is still open (flushed per batch)
    assert proc.stdout.readline() == stream_lines[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert b"stopped by SIGTERM" in err and b"were not changed" in err
    assert state.read_bytes() == before and not log.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".sk-tmp")]


def test_quantile_does_not_keep_a_run_of_tied_scores_whole():
    lines = b"".join(b'{"id": %d, "s": 0.5}\n' % i for i in range(2000))
    out = io.BytesIO()
    summary = stream_select(
        [io.BytesIO(lines)], out, strategy="quantile", score_col="s", budget=0.1
    )
    assert abs(summary["kept"] - 200) <= 2


@pytest.mark.parametrize(
    "line",
    [b'{"id": "a"}\n', b'{"id": "a", "s": null}\n', b'{"id": "a", "s": "high"}\n'],
)
def test_a_missing_or_non_numeric_score_is_an_error_not_a_silent_skip(cli, line):
    result = cli("stream", "-s", "quantile", "--score-col", "s", "-b", "1", input=line)
    assert result.exit_code == 1 and "stdin line 1: 's' is" in result.stderr


def test_a_csv_score_column_missing_from_the_header_is_a_usage_error(cli, tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,score\na,0.5\n")
    result = cli("stream", str(path), "-s", "quantile", "--score-col", "nope")
    assert result.exit_code == 2 and "columns: id, score" in result.stderr
    assert result.stdout_bytes == b""


def test_every_input_is_checked_before_any_line_is_read(cli, stream_file, tmp_path):
    result = cli("stream", str(stream_file), str(tmp_path / "nope.jsonl"), "--proba-col", "proba")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert result.stdout_bytes == b""


def test_gzip_on_stdin_is_read_and_parquet_is_refused(cli, stream_file, tmp_path):
    import gzip

    plain = cli("stream", str(stream_file), "--proba-col", "proba")
    zipped = cli("stream", "--proba-col", "proba", input=gzip.compress(stream_file.read_bytes()))
    assert zipped.exit_code == 0 and zipped.stdout_bytes == plain.stdout_bytes
    table = tmp_path / "t.parquet"
    pl.DataFrame({"id": [1]}).write_parquet(table)
    refused = cli("stream", str(table), "--proba-col", "proba")
    assert refused.exit_code == 2 and "is a Parquet file" in refused.stderr


def test_python_api_takes_paths_and_writes_a_file_whole(stream_file, tmp_path):
    out = tmp_path / "kept.jsonl"
    summary = stream_select(str(stream_file), str(out), proba_col="proba", budget=0.1)
    kept, _ = select_bytes(stream_file, proba_col="proba", budget=0.1)
    assert out.read_bytes() == kept and summary["kept"] == len(kept.splitlines())


def test_repeated_ids_are_warned_about(cli, stream_lines):
    data = b"".join(stream_lines[:50])
    command = [sys.executable, "-m", "selectkit", "stream", "-s", "random", "-b", "0.5"]
    run = subprocess.run([*command, "--id-col", "label"], input=data, capture_output=True)
    assert run.returncode == 0
    assert b"ids repeat in 'label'" in run.stderr
    assert b"ids repeat" not in subprocess.run(command, input=data, capture_output=True).stderr


def test_a_resumed_runs_summary_counts_its_own_lines(stream_file, tmp_path):
    lines = stream_file.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(b"".join(lines[:1000]))
    second.write_bytes(b"".join(lines[1000:]))
    state = str(tmp_path / "s.json")
    _, a = select_bytes(first, proba_col="proba", state=state)
    kept, b = select_bytes(second, proba_col="proba", state=state)
    assert b["lines"] == len(lines) - 1000 and b["lines_total"] == len(lines)
    assert b["kept"] == len(kept.splitlines()) and b["kept_total"] == a["kept"] + b["kept"]


@pytest.mark.parametrize("strategy", ["var-uncertainty", "rand-var-uncertainty", "split"])
def test_warmup_starts_the_threshold_where_the_budget_is_and_resumes_exactly(
    strategy, stream_file, tmp_path
):
    def first_window(warmup: int) -> float:
        log = tmp_path / f"log{warmup}.parquet"
        select_bytes(
            stream_file, strategy=strategy, proba_col="proba", budget=0.1, log=str(log),
            params={"warmup": warmup},
        )  # fmt: skip
        return float(pl.read_parquet(log)["keep"].to_numpy()[:300].mean())

    # θ0 = 1 keeps far too much until the budget estimate bites; a warm-up does not
    assert first_window(0) > 0.13 and abs(first_window(200) - 0.1) < 0.03
    lines = stream_file.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(b"".join(lines[:120]))  # the cut falls inside the warm-up
    second.write_bytes(b"".join(lines[120:]))
    kw = {"strategy": strategy, "proba_col": "proba", "params": {"warmup": 200}}
    whole, _ = select_bytes(stream_file, **kw)
    state = str(tmp_path / "s.json")
    a, _ = select_bytes(first, state=state, **kw)
    b, _ = select_bytes(second, state=state, **kw)
    assert a + b == whole


# -- cost budgets (--cost-col) on a real stream: Rotten Tomatoes with each text's token count --


@pytest.fixture(scope="module")
def cost_file(tmp_path_factory) -> Path:
    """Rotten Tomatoes rows 500..2999 as a stream: id, the token count of the text (the cost:
    3 to 300+, the plot summaries are long), the class probabilities of a nearest-centroid
    model (softmax of cosine similarity to each class's mean hashing embedding over rows
    0..499), and 1 - the top one as a utility."""
    from selectkit import embed_texts
    from tests.conftest import RT

    rows = [json.loads(line) for line in RT.read_text().splitlines()]
    x = embed_texts([r["text"] for r in rows], dim=64)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    labels = np.array([r["label"] for r in rows])
    centroids = np.stack([x[:500][labels[:500] == c].mean(axis=0) for c in np.unique(labels)])
    logits = 20.0 * x[500:] @ centroids.T
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    path = tmp_path_factory.mktemp("cost") / "rt.jsonl"
    with open(path, "w") as fh:
        for r, p in zip(rows[500:], proba, strict=True):
            p = p / p.sum()
            record = {
                "id": r["id"],
                "tokens": len(r["text"].split()),
                "proba": [round(float(v), 6) for v in p],
                "util": round(float(1.0 - p.max()), 6),
            }
            fh.write(json.dumps(record) + "\n")
    return path


def cost_kw(strategy: str) -> dict:
    return {**kw_for(strategy), "cost_col": "tokens"}


def logged(path: Path, tmp_path: Path, **kw) -> pl.DataFrame:
    log = tmp_path / "cost-log.parquet"
    select_bytes(path, log=str(log), **kw)
    return pl.read_parquet(log)


@pytest.mark.parametrize("budget", [0.1, 0.3])
@pytest.mark.parametrize(
    "strategy", ["var-uncertainty", "rand-var-uncertainty", "split", "quantile"]
)
def test_kept_cost_tracks_the_cost_share_in_every_window_of_500(
    strategy, budget, cost_file, tmp_path
):
    frame = logged(cost_file, tmp_path, budget=budget, **cost_kw(strategy))
    cost, keep = frame["cost"].to_numpy(), frame["keep"].to_numpy()
    full = cost.size // 500 * 500
    kept = (cost[:full] * keep[:full]).reshape(-1, 500).sum(axis=1)
    seen = cost[:full].reshape(-1, 500).sum(axis=1)
    assert np.all(np.abs(kept / seen - budget) <= 0.2 * budget), kept / seen
    np.testing.assert_allclose(frame["cumulative_cost"].to_numpy(), np.cumsum(cost * keep))


def test_a_cost_rate_spends_x_units_per_line(cost_file, tmp_path):
    frame = logged(cost_file, tmp_path, budget="cost:2.5", **cost_kw("rand-var-uncertainty"))
    cost, keep = frame["cost"].to_numpy(), frame["keep"].to_numpy()
    per_window = (cost[:2500] * keep[:2500]).reshape(-1, 500).sum(axis=1)
    assert np.all(np.abs(per_window - 2.5 * 500) <= 0.2 * 2.5 * 500), per_window


@settings(max_examples=12, deadline=None)
@given(
    strategy=st.sampled_from(["fixed-uncertainty", "var-uncertainty", "split", "quantile"]),
    budget=st.sampled_from(["5%", "0.2", "60%", "cost:1", "cost:7.5"]),
    seed=st.integers(0, 3),
    costs=st.lists(st.floats(0.01, 500.0), min_size=1, max_size=40),
)
def test_kept_cost_never_exceeds_the_budget_by_more_than_one_line(
    strategy, budget, seed, costs, stream_lines
):
    # real digits lines, each given a cost drawn by hypothesis (cycled over 600 lines)
    lines = []
    for i, line in enumerate(stream_lines[:600]):
        record = json.loads(line)
        record["c"] = costs[i % len(costs)]
        lines.append((json.dumps(record) + "\n").encode())
    log = io.BytesIO()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.parquet"
        kw = {**kw_for(strategy), "cost_col": "c"}
        stream_select(
            [io.BytesIO(b"".join(lines))], log, budget=budget, seed=seed, log=str(path), **kw
        )
        frame = pl.read_parquet(path)
    cost = frame["cost"].to_numpy()
    seen = np.cumsum(cost)
    if budget.startswith("cost:"):
        allowed = float(budget[5:]) * np.arange(1, cost.size + 1)
    else:
        allowed = (float(budget[:-1]) / 100 if budget.endswith("%") else float(budget)) * seen
    assert np.all(frame["cumulative_cost"].to_numpy() <= allowed + cost.max() + 1e-6)


@settings(max_examples=8, deadline=None)
@given(
    strategy=st.sampled_from(["random", "rand-var-uncertainty", "quantile", "density"]),
    cuts=st.lists(st.integers(1, 2499), min_size=1, max_size=3),
    budget=st.sampled_from(["10%", "cost:3"]),
)
def test_resuming_with_costs_decides_as_one_run(strategy, cuts, budget, cost_file):
    import tempfile

    lines = cost_file.read_bytes().splitlines(keepends=True)
    kw = cost_kw(strategy)
    if strategy == "density":  # no embeddings in this stream: the probabilities stand in
        kw["embedding_col"] = "proba"
    whole, summary = select_bytes(cost_file, budget=budget, **kw)
    pieces = []
    with tempfile.TemporaryDirectory() as tmp:
        state = str(Path(tmp) / "s.json")
        bounds = [0, *sorted(set(cuts)), len(lines)]
        for a, b in itertools.pairwise(bounds):
            out = io.BytesIO()
            last = stream_select(
                [io.BytesIO(b"".join(lines[a:b]))], out, budget=budget, state=state, **kw
            )
            pieces.append(out.getvalue())
    assert b"".join(pieces) == whole
    assert last["kept_cost_total"] == pytest.approx(summary["kept_cost"])


def test_random_keeps_an_unbiased_cost_share(cost_file):
    shares = [
        select_bytes(cost_file, budget=0.1, seed=s, **cost_kw("random"))[1]["kept_cost_fraction"]
        for s in range(5)
    ]
    assert abs(np.mean(shares) - 0.1) < 0.02, shares


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0", "zero"),
        ("-3", "negative"),
        ('"many"', "not a number"),
        ("null", "missing"),
    ],
)
def test_a_line_without_a_positive_cost_is_malformed(cli, cost_file, value, why, tmp_path):
    lines = cost_file.read_bytes().splitlines(keepends=True)[:6]
    record = json.loads(lines[3])
    bad = json.dumps(record).replace(f'"tokens": {record["tokens"]}', f'"tokens": {value}')
    data = b"".join(lines[:3]) + bad.encode() + b"\n" + b"".join(lines[4:])
    args = ["stream", "-s", "random", "--proba-col", "proba", "--cost-col", "tokens", "-b", "1"]
    result = cli(*args, input=data)
    assert result.exit_code == 1, result.stderr
    lines_err = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines_err) == 1 and "stdin line 4" in lines_err[0] and "tokens" in lines_err[0]
    assert result.stdout_bytes == b"".join(lines[:3])
    skipped = cli(*args, "--on-error", "skip", "--log", str(tmp_path / "l.parquet"), input=data)
    assert skipped.exit_code == 0 and skipped.stdout_bytes == b"".join([*lines[:3], *lines[4:]])
    frame = pl.read_parquet(tmp_path / "l.parquet")
    assert frame["cost"].is_null().to_list() == [False, False, False, True, False, False]


def test_a_misspelt_cost_field_is_named_and_skipping_every_line_warns(cli, cost_file):
    data = cost_file.read_bytes().splitlines(keepends=True)[:20]
    args = ["stream", "--proba-col", "proba", "--cost-col", "tokns", "-b", "10%"]
    result = cli(*args, input=b"".join(data))
    assert result.exit_code == 1 and "has no cost field 'tokns'" in result.stderr, result.stderr
    skipped = subprocess.run(  # not -q: the warning is the point
        [sys.executable, "-m", "selectkit", *args, "--on-error", "skip"],
        input=b"".join(data), capture_output=True,
    )  # fmt: skip
    assert skipped.returncode == 0 and skipped.stdout == b""
    assert b"all 20 lines were malformed and skipped" in skipped.stderr, skipped.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-b", "cost:3"], "give --cost-col NAME"),
        (["--cost-col", "tokens", "-b", "cost:-1"], "must be a positive number"),
        (["--cost-col", "tokens", "-b", "cost:lots"], "must be a positive number"),
    ],
)
def test_cost_budget_usage_errors_exit_2(cli, cost_file, args, message):
    result = cli("stream", "--proba-col", "proba", *args, input=cost_file.read_bytes()[:2000])
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and result.stdout_bytes == b""


def test_cost_budgets_through_the_cli_on_csv_and_the_state_names_the_cost(cli, cost_file, tmp_path):
    frame = pl.read_ndjson(cost_file).select("id", "tokens", "util")
    csv_path = tmp_path / "rt.csv"
    frame.write_csv(csv_path)
    state = tmp_path / "s.json"
    base = ["stream", str(csv_path), "-s", "quantile", "--score-col", "util"]
    result = cli(*base, "--cost-col", "tokens", "-b", "cost:2")
    assert result.exit_code == 0, result.stderr
    kept = pl.read_csv(io.BytesIO(result.stdout_bytes))
    assert abs(kept["tokens"].sum() / frame.height - 2.0) < 0.2
    # a state saved with a cost budget does not resume a run without one
    assert cli(*base, "--cost-col", "tokens", "--state", str(state)).exit_code == 0
    again = cli(*base, "--state", str(state))
    assert again.exit_code == 2 and "cost_col" in again.stderr
    missing = cli(*base, "--cost-col", "seconds")
    assert missing.exit_code == 2 and "--cost-col 'seconds' is not a column" in missing.stderr
