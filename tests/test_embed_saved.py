"""Issue 14 part 5: one embedding space across runs (``embed --save-model DIR`` / ``--model DIR``),
through the real CLI and the Python API on the bundled corpora, with real faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import selectkit as sk
from selectkit.embed import HashingEmbedder
from selectkit.embed.saved import ARRAYS_FILE, META_FILE, read_saved, save_embedder
from selectkit.io import read_provenance

from .conftest import FORTUNES, RT, leftovers

SELECTKIT = [sys.executable, "-m", "selectkit", "-q"]


def _vectors(path: Path) -> dict[str, np.ndarray]:
    frame = pl.read_parquet(path)
    return dict(zip(frame["id"].to_list(), np.stack(frame["embedding"].to_numpy()), strict=True))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> Path:
    """Two overlapping slices of Rotten Tomatoes (rows 0-1199 and 900-1999) and a model saved
    from the first, with its vectors."""
    root = tmp_path_factory.mktemp("saved")
    lines = RT.read_text().splitlines()
    (root / "a.jsonl").write_text("\n".join(lines[:1200]) + "\n")
    (root / "b.jsonl").write_text("\n".join(lines[900:2000]) + "\n")
    r = subprocess.run(
        [*SELECTKIT, "embed", "a.jsonl", "-o", "a.parquet", "--save-model", "m"],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return root


def test_saved_model_puts_new_data_in_the_same_space(cli, corpora):
    r = cli("embed", str(corpora / "b.jsonl"), "-o", str(corpora / "b.parquet"),
            "--model", str(corpora / "m"))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    a, b = _vectors(corpora / "a.parquet"), _vectors(corpora / "b.parquet")
    shared = sorted(set(a) & set(b))
    assert len(shared) == 300
    # the same text gets the same vector, bit for bit, in both runs
    assert all(np.array_equal(a[i], b[i]) for i in shared)
    # without the saved model, the second run fits its own space: other vectors
    r = cli("embed", str(corpora / "b.jsonl"), "-o", str(corpora / "own.parquet"))
    own = _vectors(corpora / "own.parquet")
    assert r.exit_code == 0 and not all(np.array_equal(a[i], own[i]) for i in shared)


def test_reusing_the_model_on_its_own_corpus_gives_the_same_bytes(cli, corpora):
    out = corpora / "a_again.parquet"
    r = cli("embed", str(corpora / "a.jsonl"), "-o", str(out), "--model", str(corpora / "m"))
    assert r.exit_code == 0, r.stderr
    before = pl.read_parquet(corpora / "a.parquet")
    assert pl.read_parquet(out)["embedding"].equals(before["embedding"])
    params = read_provenance(out)["params"]
    saved = json.loads((corpora / "m" / META_FILE).read_text())
    assert params["model_fingerprint"] == saved["config"]["model_fingerprint"]
    assert params["model_folder"] == str(corpora / "m") and params["fit_rows"] == 1200


def test_python_api_dataset_folder_and_stdin_agree_with_the_cli(corpora, tmp_path):
    want = pl.read_parquet(corpora / "a.parquet")["embedding"]
    sk.embed_file(corpora / "a.jsonl", tmp_path / "api.parquet", model=corpora / "m")
    assert pl.read_parquet(tmp_path / "api.parquet")["embedding"].equals(want)
    # two shards into a dataset folder: the saved model is shared with every shard's kernel
    lines = (corpora / "a.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "s1.jsonl").write_text("".join(lines[:500]))
    (tmp_path / "s2.jsonl").write_text("".join(lines[500:]))
    sk.embed_file([tmp_path / "s1.jsonl", tmp_path / "s2.jsonl"], f"{tmp_path}/dir/",
                  model=corpora / "m")  # fmt: skip
    got = pl.read_parquet(tmp_path / "dir" / "*.parquet").sort("id")
    assert got["embedding"].equals(pl.read_parquet(corpora / "a.parquet").sort("id")["embedding"])
    piped = subprocess.run(
        [*SELECTKIT, "embed", "-", "-o", str(tmp_path / "s.parquet"), "--model", str(corpora / "m")],
        input=(corpora / "a.jsonl").read_bytes(), capture_output=True,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert pl.read_parquet(tmp_path / "s.parquet")["embedding"].equals(want)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--dim", "64"], "has 256 dimensions, not 64; drop --dim"),
        (["-e", "wordllama"], "is 'hashing', not 'wordllama'; drop --embedder"),
        (["--pooling", "cls"], "pools with None, not 'cls'; drop --pooling"),
        (["--save-model", "m2"], "give one of them"),
    ],
)
def test_options_that_disagree_with_the_saved_model_are_usage_errors(cli, corpora, extra,
                                                                      fragment):  # fmt: skip
    out = corpora / "refused.parquet"
    r = cli("embed", str(corpora / "b.jsonl"), "-o", str(out), "--model", str(corpora / "m"),
            *extra)  # fmt: skip
    assert r.exit_code == 2 and fragment in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()


def _copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in (META_FILE, ARRAYS_FILE):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_damaged_or_foreign_folders_are_refused_with_the_fix(cli, corpora, tmp_path):
    def run(model: Path) -> str:
        r = cli("embed", str(corpora / "b.jsonl"), "-o", str(tmp_path / "x.parquet"),
                "--model", str(model))  # fmt: skip
        assert r.exit_code == 1 and not (tmp_path / "x.parquet").exists(), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        return r.stderr

    assert "is not a saved embedder (no embedder.json)" in run(tmp_path / "nothing")
    changed = _copy_model(corpora / "m", tmp_path / "changed")
    with np.load(changed / ARRAYS_FILE) as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    arrays["idf_words"][7] += 1.0
    np.savez(changed / ARRAYS_FILE, **arrays)
    assert "does not match the fingerprint" in run(changed)
    short = _copy_model(corpora / "m", tmp_path / "short")
    np.savez(short / ARRAYS_FILE, **{**arrays, "idf_words": arrays["idf_words"][:10]})
    assert "mis-shapes the array 'idf_words'" in run(short)
    old = _copy_model(corpora / "m", tmp_path / "old")
    meta = json.loads((old / META_FILE).read_text())
    (old / META_FILE).write_text(json.dumps({**meta, "format_version": 99}))
    assert "is not a version-1 selectkit-embedder file" in run(old)
    (old / META_FILE).write_text("{not json")
    assert "is not valid JSON" in run(old)


def test_save_model_refuses_a_folder_with_other_files(cli, corpora, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    r = cli("embed", str(corpora / "b.jsonl"), "-o", str(tmp_path / "x.parquet"),
            "--save-model", str(tmp_path / "busy"))  # fmt: skip
    assert r.exit_code == 2 and "already holds other files (notes.txt" in r.stderr
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_a_failed_run_saves_no_model_and_keeps_the_old_one(cli, corpora, tmp_path):
    old = _copy_model(corpora / "m", tmp_path / "m")
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    # row 1051 has no text: the fit (first 1000 rows) succeeds, the embedding then fails
    rows = [json.loads(x) for x in (corpora / "a.jsonl").read_text().splitlines()][:1051]
    rows[1050]["text"] = None
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = cli("embed", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "x.parquet"),
            "--fit-rows", "1000", "--batch-size", "500", "--save-model",
            str(tmp_path / "new"))  # fmt: skip
    assert r.exit_code == 1 and "null" in r.stderr, r.stderr
    # a folder holding an embedder fitted on other data is never replaced
    r = cli("embed", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "x.parquet"),
            "--fit-rows", "1000", "--batch-size", "500", "--save-model", str(old))  # fmt: skip
    assert r.exit_code == 2 and "already holds an embedder fitted on other data" in r.stderr
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    assert not (tmp_path / "new").exists() and not (tmp_path / "x.parquet").exists()
    assert leftovers(tmp_path) == []


def test_rerunning_the_same_command_may_rewrite_its_model(cli, corpora, tmp_path):
    old = _copy_model(corpora / "m", tmp_path / "m")
    r = cli("embed", str(corpora / "a.jsonl"), "-o", str(tmp_path / "a.parquet"),
            "--save-model", str(old))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert (old / META_FILE).read_text() == (corpora / "m" / META_FILE).read_text()


def test_an_empty_or_truncated_arrays_file_is_a_data_error(cli, corpora, tmp_path):
    damaged = _copy_model(corpora / "m", tmp_path / "damaged")
    (damaged / ARRAYS_FILE).write_bytes(b"")
    r = cli("embed", str(corpora / "b.jsonl"), "-o", str(tmp_path / "x.parquet"),
            "--model", str(damaged))  # fmt: skip
    assert r.exit_code == 1 and "is not a readable npz" in r.stderr, r.stderr


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=60), min_size=1, max_size=12))
def test_a_loaded_embedder_embeds_any_text_like_the_fitted_one(tmp_path_factory, texts):
    fitted = _fortunes_model()
    folder = _fortunes_folder(tmp_path_factory)
    loaded = read_saved(folder).load()
    np.testing.assert_array_equal(loaded.embed(texts), fitted.embed(texts))


_CACHE: dict[str, object] = {}


def _fortunes_model() -> HashingEmbedder:
    if "model" not in _CACHE:
        texts = pl.read_ndjson(FORTUNES)["text"]
        _CACHE["model"] = HashingEmbedder(dim=32, sketch_dim=512, n_buckets=1 << 14).fit(texts)
    return _CACHE["model"]  # type: ignore[return-value]


def _fortunes_folder(factory) -> Path:
    if "folder" not in _CACHE:
        _CACHE["folder"] = save_embedder(_fortunes_model(), factory.mktemp("fm") / "model")
    return _CACHE["folder"]  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--runtime", "onnx"], "--runtime onnx applies to the minilm embedder only"),
        (["-e", "wordllama", "--runtime", "onnx-int8"], "applies to the minilm embedder only"),
        (["-e", "minilm", "--runtime", "tensorrt"], "tensorrt"),
    ],
)
def test_runtime_is_checked_before_any_model_loads(cli, tmp_path, args, fragment):
    r = cli("embed", str(RT), "-o", str(tmp_path / "x.parquet"), *args)
    assert r.exit_code == 2 and fragment in r.stderr, r.stderr
    assert not (tmp_path / "x.parquet").exists()


# ---------------------------------------------------------------------------------------------
# real faults: SIGTERM in the middle of a run, and a full disk (a real tmpfs)


@pytest.mark.slow
def test_sigterm_mid_run_saves_no_model(corpora, tmp_path):
    lines = RT.read_text().splitlines(keepends=True)
    with open(tmp_path / "big.jsonl", "w") as f:
        for copy in range(20):
            f.writelines(line.replace('"id": "', f'"id": "{copy}-', 1) for line in lines)
    proc = subprocess.Popen(
        [*SELECTKIT, "embed", "big.jsonl", "-o", "x.parquet", "--save-model", "m"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    # wait until the new model is staged (the fit is done), then stop the run
    while time.monotonic() < deadline and not any(
        p.name.startswith(".m.") for p in tmp_path.iterdir()
    ):
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.parquet").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_full_disk_while_saving_keeps_the_old_model(corpora, tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        old = _copy_model(corpora / "m", mnt / "m")  # ~4 MiB: too little room for a second
        before = {p.name: p.read_bytes() for p in old.iterdir()}
        r = subprocess.run(
            [*SELECTKIT, "embed", str(corpora / "a.jsonl"), "-o", str(tmp_path / "x.parquet"),
             "--save-model", str(old)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert r.returncode == 1, r.stderr
        line = r.stderr.strip().splitlines()
        assert len(line) == 1 and "No space left" in line[0] and str(old) in line[0], r.stderr
        assert {p.name: p.read_bytes() for p in old.iterdir()} == before
        assert not (tmp_path / "x.parquet").exists() and leftovers(mnt) == []
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
