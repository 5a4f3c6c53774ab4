"""DSIR: importance resampling of a raw corpus towards target corpora (Xie et al., NeurIPS 2023).

Each document's log-importance weight is the log-likelihood ratio of its hashed n-grams under the
target and the raw bag-of-n-grams models; documents are drawn without replacement in proportion
to exp(weight) by Gumbel top-k (or ranked by weight with ``top_k``, or drawn with replacement).
From files (``select_files``, the CLI) DSIR streams the corpus in at most two passes of shard
kernels on every core or on a Ray cluster (``engine=``); from a Pool (Python API) it reads the
pool's text column. The core lives in ``selectkit.dsir``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from selectkit import textcap
from selectkit.dsir.features import HASHES
from selectkit.dsir.pipeline import DsirSettings, run_dsir
from selectkit.dsir.sources import Corpus, FrameShard
from selectkit.dsir.weigh import FeatureConfig
from selectkit.errors import SelectkitUsageError, param_option
from selectkit.io.tables import check_unique_ids
from selectkit.pool import Columns, Pool
from selectkit.rng import derive_rng
from selectkit.strategies.base import (
    AUTO,
    LABELS_AS_DATA,
    Param,
    Selection,
    StreamedSelection,
    register_strategy,
)
from selectkit.strategies.inputs import FileInputs, StreamedInput

PARAMS = {
    "target": Param(
        str, [], "Target corpus file (repeatable: one quota per target).", multiple=True
    ),
    "budget_tokens": Param(
        int,
        0,
        "Select documents until their tokens reach this total (instead of --budget).",
        low=0,
    ),
    "ngrams": Param(int, 2, "Largest n-gram: 1 = unigrams, 2 = unigrams + bigrams, ...", low=1),
    "buckets": Param(int, 10_000, "Hash buckets of the n-gram features.", low=1),
    "hash": Param(str, "poly64", "poly64 (fast, default) or sha256 (the reference's ids).", HASHES),
    "smoothing": Param(
        float, 1.0, "Pseudo-count added to every target bucket (0 = reference).", low=0.0
    ),
    "min_tokens": Param(int, 0, "Never pick documents with fewer tokens (reference: 100).", low=0),
    "top_k": Param(bool, False, "Take the highest weights instead of sampling (deterministic)."),
    "with_replacement": Param(
        bool, False, "Draw with replacement; the manifest weight counts the draws."
    ),
    "quotas": Param(
        str, "auto", "Budget share per target: auto (token shares), pooled (one target), 0.7,0.3."
    ),
    "workers": Param(
        int,
        AUTO,
        "Processes of the local engine (auto: all cores for inputs >= 4 MiB); not with --engine "
        "ray.",
        low=1,
    ),
    "model": Param(str, "", "Weigh with a model saved by --save-model (no fitting, no --target)."),
    "save_model": Param(str, "", "Write the fitted distributions to this .npz file."),
    "max_chars": Param(int, textcap.MAX_CHARS, textcap.MAX_CHARS_HELP, low=1),
    "on_long": Param(str, textcap.ON_LONG[0], textcap.ON_LONG_HELP, textcap.ON_LONG),
}


def settings_from(
    params: dict[str, Any], columns: Columns, input_format: str | None
) -> DsirSettings:
    """DsirSettings from the strategy's resolved parameters (each value already within its
    ``Param``); usage errors for combinations that cannot work together."""
    if params["top_k"] and params["with_replacement"]:
        raise SelectkitUsageError(
            f"choose one of {param_option('top_k')} and {param_option('with_replacement')}"
        )
    if params["model"]:  # the saved model fixes its features and smoothing
        fixed = [
            k for k in ("ngrams", "buckets", "hash", "smoothing") if params[k] != PARAMS[k].default
        ]
        if fixed:
            raise SelectkitUsageError(
                f"{param_option('model', params['model'])} fixes the features and smoothing it "
                f"was fitted with; drop {', '.join(param_option(k) for k in fixed)}"
            )
    workers = None if params["workers"] == AUTO else int(params["workers"])
    mode = "topk" if params["top_k"] else "replace" if params["with_replacement"] else "gumbel"
    return DsirSettings(
        targets=[str(t) for t in params["target"]],
        features=FeatureConfig(params["ngrams"], params["buckets"], params["hash"]),
        smoothing=params["smoothing"],
        min_tokens=params["min_tokens"],
        mode=mode,
        budget_tokens=params["budget_tokens"] or None,
        quotas=params["quotas"],
        workers=workers,
        model=params["model"] or None,
        save_model=params["save_model"] or None,
        text_col=columns.text,
        id_col=columns.id,
        input_format=input_format,
        max_chars=params["max_chars"],
        on_long=params["on_long"],
    )


def _base_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(1 << 62))


def dsir_stream(
    files: FileInputs,
    budget: int | float | str | None,
    seed: int,
    params: dict[str, Any],
) -> StreamedSelection:
    """Stream ``files`` through DSIR and return the manifest: id (the input's ids, or the global
    row number in input order when it has none), rank, score (log-importance weight), weight
    (1, or the number of draws with replacement), and target (with several targets)."""
    columns, input_format = files.columns, files.input_format
    settings = settings_from(params, columns, input_format)
    corpus = Corpus(list(map(str, files.paths)), input_format)
    res = run_dsir(
        corpus,
        budget,
        _base_seed(derive_rng(seed, "select", "dsir")),
        settings,
        engine=getattr(files, "engine", None),  # the runner's engine (None: local)
    )
    ids = pl.Series("id", res.ids) if res.ids is not None else pl.Series("id", res.rows)
    # ids are not collected for the whole corpus (memory): the selection's must be unique
    check_unique_ids(ids, "the inputs' selected rows")
    frame = pl.DataFrame(
        {
            "id": ids,
            "rank": np.arange(res.rows.size, dtype=np.int64),
            "score": pl.Series(res.scores, dtype=pl.Float64),
            "weight": pl.Series(res.weights, dtype=pl.Float64),
        }
    )
    if len(res.target_names) > 1:
        names = pl.Series("target", res.target_names, dtype=pl.String)
        frame = frame.with_columns(target=names.gather(res.target))
    streamed = StreamedSelection(
        manifest=frame,
        metrics=res.metrics,
        params=res.params,
        inputs=res.inputs,
        timings=res.timings,
    )
    if hasattr(streamed, "engine"):  # the runner records the engine (issue 13)
        streamed.engine = res.engine
    return streamed


# from files, DSIR reads the corpus itself in at most two streamed passes; a Pool is wide
STREAMED = StreamedInput(dsir_stream)


def example_params() -> dict[str, Any]:
    """DSIR cannot run without a target: the bundled fortunes corpus serves as one."""
    from selectkit.demo import bundled_corpus  # lazy: demo imports the select runner

    return {"target": [str(bundled_corpus("fortunes.jsonl"))]}


@register_strategy(
    "dsir",
    summary="Importance resampling towards target corpora on hashed n-grams (DSIR, Xie et al. "
    "2023); streams corpora larger than memory from files.",
    needs=("text",),
    params=PARAMS,
    cost="2 streamed passes, O(characters) on all cores; memory O(buckets x targets + budget)",
    inputs=STREAMED,
    labels=LABELS_AS_DATA,  # a corpus to resample; the streamed path reads no labels at all
    examples=example_params,
)
def dsir(pool: Pool, budget: int | None, rng: np.random.Generator, **params: Any) -> Selection:
    """DSIR on an in-memory pool's text column (unlabelled rows only); see the module doc."""
    if params["with_replacement"]:
        raise SelectkitUsageError(
            f"{param_option('with_replacement')} picks fewer distinct rows than the budget; "
            "run it on files "
            "(selectkit select / select_files), whose manifest weights count the draws"
        )
    if params["budget_tokens"]:
        raise SelectkitUsageError(
            f"{param_option('budget_tokens')} needs the file interface "
            "(selectkit select / select_files)"
        )
    settings = settings_from(params, pool.columns, None)
    candidates = pool.candidates
    texts = pool.frame.get_column(pool.columns.text).gather(candidates)
    # the pool's ids, as the file interface reads them: the same rows get the same noise
    ids = pool.ids.gather(candidates)
    res = run_dsir(FrameShard(texts, ids=ids), budget, _base_seed(rng), settings)
    return Selection(
        indices=candidates[res.rows],
        scores=res.scores,
        weights=res.weights,
        metrics=res.metrics,
        params=res.params,
    )
