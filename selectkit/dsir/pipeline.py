"""DSIR end to end: fit the target and raw n-gram distributions, weigh every document, select.

The driver fits the targets, plans the corpus's shards (fixed by the data) and runs at most two
passes of shard kernels (``selectkit.dsir.kernels``) on an engine (this process, a local process
pool or a Ray cluster): pass 1 counts each shard's n-grams (skipped when a saved model is given
and the budget needs no corpus totals) and the driver adds them up in shard order; pass 2 weighs
each shard and returns its own top lists, which the driver merges exactly
(``selectkit.dsir.merge``). The result is the same on every engine and number of workers.
Driver memory is O(buckets x targets + budget + shards in flight x their candidates), flat in
corpus size; the selected documents' n-gram buckets are kept (about 4 bytes per token) to measure
the KL reduction exactly. Each kernel holds one shard: O(budget + one batch).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selectkit.budget import parse_budget
from selectkit.dsir.kernels import CountSpec, SelectSpec, count_shard, select_shard
from selectkit.dsir.merge import CandidateMerge
from selectkit.dsir.model import DsirModel, kl_divergence
from selectkit.dsir.resample import prefix_length
from selectkit.dsir.sources import Corpus, FrameShard, Reading, check_ids_agree, merged_inputs
from selectkit.dsir.weigh import FeatureConfig
from selectkit.engine import LocalEngine, default_workers, engine_record, get_engine
from selectkit.engine.shards import SHARD_ROWS
from selectkit.errors import SelectkitError, SelectkitUsageError, option, param_option
from selectkit.textcap import MAX_CHARS, TextCap, warn_truncated

INLINE_BELOW_BYTES = 4 << 20  # smaller inputs run in this process: spawning costs more


@dataclass
class DsirSettings:
    """Every DSIR option, resolved (see docs/dsir.md)."""

    targets: list[str] = field(default_factory=list)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    smoothing: float = 1.0
    min_tokens: int = 0
    mode: str = "gumbel"  # gumbel | topk | replace
    budget_tokens: int | None = None
    quotas: str = "auto"
    workers: int | None = None
    model: str | None = None
    save_model: str | None = None
    text_col: str = "text"
    id_col: str = "id"
    input_format: str | None = None
    max_chars: int = MAX_CHARS
    on_long: str = "truncate"

    def text_cap(self) -> TextCap:
        """A fresh ``--max-chars`` cap (one per corpus, so each counts its own truncations)."""
        return TextCap(self.max_chars, self.on_long)


@dataclass
class DsirResult:
    """What DSIR picked: global rows (input order; -1 when the inputs have ids and were not
    counted), ids (None = rows are the ids), log-weights, weights (draws with replacement, else
    1), target index per pick, plus metrics, timings, the engine's record and the inputs read."""

    rows: np.ndarray
    ids: list[Any] | None
    scores: np.ndarray
    weights: np.ndarray
    target: np.ndarray
    target_names: list[str]
    metrics: dict[str, Any]
    params: dict[str, Any]
    timings: dict[str, float]
    engine: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)


def fit_target(
    paths: list[str], settings: DsirSettings, cap: TextCap | None = None
) -> tuple[np.ndarray, int]:
    """n-gram counts (B,) and token total of the target files, in this process; texts longer
    than ``settings.max_chars`` are cut (their number is added to ``cap.truncated`` when given)."""
    corpus = Corpus(paths)  # format by extension
    spec = CountSpec(settings.features, _reading(settings))
    counts = np.zeros(settings.features.buckets, dtype=np.int64)
    tokens = truncated = 0
    try:
        for shard in corpus.plan():
            part = count_shard(shard, spec)
            counts += part.counts
            tokens += part.eligible_tokens
            truncated += part.truncated
    finally:
        corpus.close()
    if cap is not None:
        cap.truncated += truncated
    if tokens == 0:
        raise SelectkitError(
            f"target '{', '.join(paths)}' has no tokens in column '{settings.text_col}'; give "
            "a target corpus with text"
        )
    return counts, tokens


def _reading(settings: DsirSettings) -> Reading:
    return Reading(settings.text_col, settings.id_col, settings.max_chars, settings.on_long)


def _target_model(settings: DsirSettings, cap: TextCap) -> tuple[np.ndarray, list[str], np.ndarray]:
    if not settings.targets:
        raise SelectkitUsageError(
            f"strategy 'dsir' needs a target corpus: add {param_option('target', 'FILE')} "
            f"(repeatable), or a saved model with {param_option('model', 'FILE.npz')}"
        )
    # each target is read once: its truncations add up
    fitted = [fit_target([target], settings, cap) for target in settings.targets]
    counts = np.stack([c for c, _ in fitted]).astype(np.float64)
    tokens = np.array([t for _, t in fitted], dtype=np.int64)
    names = list(settings.targets)
    if settings.quotas == "pooled" and len(names) > 1:
        counts, tokens, names = (
            counts.sum(axis=0, keepdims=True),
            tokens.sum(keepdims=True),
            ["+".join(names)],
        )
    return counts, names, tokens


def resolve_quotas(spec: str, target_tokens: np.ndarray) -> np.ndarray:
    """Shares of the budget per target: ``auto`` = the targets' token shares, ``pooled`` = one
    target, or explicit comma-separated shares (normalised to sum to 1)."""
    j = target_tokens.size
    if spec in ("auto", "pooled"):
        return target_tokens / target_tokens.sum()
    try:
        shares = np.array([float(x) for x in spec.split(",")], dtype=np.float64)
    except ValueError:
        raise SelectkitUsageError(
            f"{param_option('quotas', spec)}: give auto, pooled or one share per target like "
            "0.7,0.3"
        ) from None
    if (
        shares.size != j
        or not np.all(np.isfinite(shares))
        or (shares < 0).any()
        or shares.sum() <= 0
    ):
        raise SelectkitUsageError(
            f"{param_option('quotas', spec)}: give {j} non-negative shares (one per target), e.g. "
            + ",".join(["0.5"] * j)
        )
    return shares / shares.sum()


def split_budget(total: int, shares: np.ndarray) -> np.ndarray:
    """floor(total * share) per target, the remainder to the last (the reference's rule)."""
    parts = np.floor(total * shares).astype(np.int64)
    parts[-1] += total - parts.sum()
    return parts


def _local_workers(settings: DsirSettings, corpus: Corpus | None, shards: list) -> int:
    """``--workers``, or auto: every core for inputs of 4 MiB or more, else 1 (spawning costs
    more than it saves on small inputs)."""
    if settings.workers:
        return settings.workers
    if corpus is None:
        return 1
    try:
        size = corpus.total_bytes(shards)
    except OSError:
        size = INLINE_BELOW_BYTES  # unreadable: the read itself reports it
    return default_workers() if size >= INLINE_BELOW_BYTES else 1


def _runs_own_pool(engine: Any) -> bool:
    """Whether DSIR starts its own local engine of ``workers`` processes: for ``"local"``,
    ``None`` or a local engine of one worker (the runner's default). Any other engine (Ray, a
    local pool of several workers) runs the shards as given."""
    if engine is None or (isinstance(engine, str) and engine == "local"):
        return True
    return isinstance(engine, LocalEngine) and engine.workers == 1


def _check_engine(engine: Any, workers: int | None) -> None:
    """A usage error, before any work, for ``workers`` with an engine that brings its own."""
    if workers and not _runs_own_pool(engine):
        raise SelectkitUsageError(
            f"{param_option('workers')} sets the processes of the local engine; on another "
            "engine its own workers run the shards: drop it"
        )


def _open_engine(engine: Any, ray_address: str | None, workers: int | None, auto: int):
    """(the engine to run on, whether we started it and must close it); see ``_runs_own_pool``
    (auto: ``auto`` processes)."""
    if _runs_own_pool(engine):
        return get_engine("local", workers=workers or auto), True
    if isinstance(engine, str):
        return get_engine(engine, ray_address=ray_address), True
    return engine, False


def _pool_shards(source: FrameShard) -> list[FrameShard]:
    """An in-memory column as shards of ``SHARD_ROWS`` rows (fixed by the data)."""
    n = source.texts.len()
    out = []
    for i, start in enumerate(range(0, max(n, 1), SHARD_ROWS)):
        ids = None if source.ids is None else source.ids.slice(start, SHARD_ROWS)
        texts = source.texts.slice(start, SHARD_ROWS)
        key = f"pool:{start}-{start + texts.len()}"
        out.append(FrameShard(texts, ids, key=key, index=i, row0=start))
    return out


def run_dsir(
    source: Corpus | FrameShard,
    budget: int | float | str | None,
    seed: int,
    settings: DsirSettings,
    engine: Any = "local",
    ray_address: str | None = None,
) -> DsirResult:
    """Select from ``source`` (a corpus of files, or a pool's text column) with DSIR; see the
    module doc. ``budget`` counts documents (a count, fraction or percentage of the eligible
    ones); ``settings.budget_tokens`` counts tokens instead. ``seed`` is an integer base for every
    random stream. ``engine`` ("local", "ray" or an Engine) runs the shard kernels; the result is
    the same on any engine and any number of workers."""
    timings: dict[str, float] = {}
    cfg = settings.features
    if (budget is None) == (settings.budget_tokens is None):
        raise SelectkitUsageError(
            f"strategy 'dsir' needs one budget: {option('budget')} (documents) or "
            f"{param_option('budget_tokens')} (tokens)"
        )
    if settings.mode == "replace" and settings.budget_tokens is not None:
        raise SelectkitUsageError(
            f"{param_option('with_replacement')} draws a number of documents: use "
            f"{option('budget')}, not {param_option('budget_tokens')}"
        )
    if isinstance(source, Corpus):
        _check_engine(engine, settings.workers)
    t0 = time.perf_counter()
    target_cap = settings.text_cap()
    if settings.model:
        model = DsirModel.load(settings.model)
        cfg = FeatureConfig(model.ngrams, model.buckets, model.hash_name)
        if settings.targets:
            raise SelectkitUsageError(
                f"give either {param_option('model')} (a saved fit) or {param_option('target')}, "
                "not both"
            )
    else:
        counts, names, tokens = _target_model(settings, target_cap)
        model = DsirModel(
            cfg.ngrams,
            cfg.buckets,
            cfg.hash_name,
            settings.smoothing,
            np.zeros(cfg.buckets),
            counts,
            names,
            tokens,
        )
    timings["fit_target_s"] = time.perf_counter() - t0
    n_targets = model.n_targets
    if model.target_tokens is None:
        model.target_tokens = np.ones(n_targets, dtype=np.int64)
    shares = resolve_quotas(settings.quotas, model.target_tokens)
    need_pass1 = (
        not settings.model
        or (budget is not None and not str(budget).strip().isdigit())
        or (settings.budget_tokens is not None and n_targets > 1)
    )
    reading = _reading(settings)
    corpus = source if isinstance(source, Corpus) else None
    started = False
    eng = None
    try:
        if corpus is not None:
            shards = corpus.plan()
            eng, started = _open_engine(
                engine, ray_address, settings.workers, _local_workers(settings, corpus, shards)
            )
        else:
            shards = _pool_shards(source)
            eng, started = _open_engine("local", None, settings.workers, 1)
        stats = {"rows": None, "eligible": None, "eligible_tokens": None, "max_tokens": None}
        if need_pass1:
            t0 = time.perf_counter()
            raw, stats, shards = _count(eng, shards, CountSpec(cfg, reading, settings.min_tokens))
            if not settings.model:
                model.raw_counts = raw.astype(np.float64)
            timings["fit_raw_s"] = time.perf_counter() - t0
        elif any(s.row0 is None for s in shards) and _first_has_ids(shards, reading) is False:
            # id-less documents are numbered across the shards: count the rows first
            t0 = time.perf_counter()
            _raw, _stats, shards = _count(eng, shards, CountSpec(cfg, reading, ngrams=False))
            timings["count_rows_s"] = time.perf_counter() - t0
        if settings.save_model:
            model.save(settings.save_model)
        log_ratio = model.log_ratio()
        t0 = time.perf_counter()
        picked = _weigh_and_select(
            eng, shards, budget, seed, settings, cfg, log_ratio, shares, stats
        )
        timings["weigh_select_s"] = time.perf_counter() - t0
        engine_rec = engine_record(eng)
    finally:
        if eng is not None and started:
            eng.close()
        if corpus is not None:
            corpus.close()
    rows_out, ids, scores, weights, target, metrics, extra = picked
    total_rows = metrics["pool_rows"]
    q_sel = _normalise(metrics.pop("_selected_counts"))
    q_rand = _normalise(metrics.pop("_baseline_counts"))
    p = model.target_probs()
    kl_raw = [kl_divergence(p[j], model.raw_probs()) for j in range(n_targets)]
    kl_rand = [kl_divergence(p[j], q_rand) for j in range(n_targets)]
    kl_sel = [kl_divergence(p[j], q_sel) for j in range(n_targets)]
    elapsed = sum(v for k, v in timings.items())
    metrics.update(
        {
            "kl_target_pool": [round(v, 6) for v in kl_raw],
            "kl_target_random": [round(v, 6) for v in kl_rand],
            "kl_target_selected": [round(v, 6) for v in kl_sel],
            "kl_reduction": round(float(np.mean(np.array(kl_rand) - np.array(kl_sel))), 6),
            "model_fingerprints": model.fingerprints(),
            "target_tokens": [int(t) for t in model.target_tokens],
            "raw_ngrams": int(model.raw_counts.sum()),
            "truncated_texts": extra["truncated"],
            "truncated_target_texts": target_cap.truncated,
        }
    )
    # a rate changes from run to run: it is a timing, not a metric
    timings["docs_per_s"] = total_rows / max(elapsed, 1e-9)
    # one line for both: the corpus counts one pass (both passes cut the same texts)
    warn_truncated(extra["truncated"] + target_cap.truncated, settings.max_chars)
    params = {
        "ngrams": cfg.ngrams,
        "buckets": cfg.buckets,
        "hash": cfg.hash_name,
        "smoothing": model.smoothing,
        "quotas_resolved": [round(float(s), 6) for s in shares],
        "targets": model.target_names,
        **target_cap.record(),
    }
    return DsirResult(
        rows_out,
        ids,
        scores,
        weights,
        target,
        model.target_names,
        metrics,
        params,
        {k: round(v, 6) if k != "docs_per_s" else round(v, 1) for k, v in timings.items()},
        engine_rec,
        extra["inputs"],
    )


def _count(eng, shards: list, spec: CountSpec) -> tuple[np.ndarray, dict[str, Any], list]:
    """Pass 1 on the engine: the corpus's n-gram counts (summed in shard order, exact), its
    statistics, and the shards with their first global row numbers."""
    raw = np.zeros(spec.features.buckets, dtype=np.int64)
    rows = eligible = eligible_tokens = max_tokens = 0
    row0s, has_ids = [], []
    label = "dsir: counting n-grams" if spec.ngrams else "dsir: counting rows"
    for part in eng.map(count_shard, shards, shared=spec, label=label, total=len(shards)):
        if part.counts is not None:
            raw += part.counts
        row0s.append(rows)
        has_ids.append(part.has_ids)
        rows += part.rows
        eligible += part.eligible
        eligible_tokens += part.eligible_tokens
        max_tokens = max(max_tokens, part.max_tokens)
    check_ids_agree(has_ids, shards, spec.reading.id_col)
    if rows == 0:
        raise SelectkitError("the input has no rows; give a corpus with documents")
    stats = {
        "rows": rows,
        "eligible": eligible,
        "eligible_tokens": eligible_tokens,
        "max_tokens": max_tokens,
    }
    shards = [dataclasses.replace(s, row0=r) for s, r in zip(shards, row0s, strict=True)]
    return raw, stats, shards


def _first_has_ids(shards: list, reading: Reading) -> bool | None:
    """Whether the first non-empty shard has an id column (reads one batch of it)."""
    for shard in shards:
        for chunk in shard.open(reading).chunks():
            return chunk.ids is not None
    return None


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts


def _weigh_and_select(eng, shards, budget, seed, settings, cfg, log_ratio, shares, stats):
    n_targets = log_ratio.shape[0]
    doc_budget = None
    if budget is not None:
        if stats["eligible"] == 0 and settings.min_tokens > 0:
            raise SelectkitError(
                f"no document has {settings.min_tokens} tokens or more; lower "
                + param_option("min_tokens", settings.min_tokens)
            )
        if stats["eligible"] is not None:
            doc_budget = parse_budget(budget, stats["eligible"])
        else:
            doc_budget = parse_budget(budget, 1 << 62)
    elif stats["eligible_tokens"] is not None and settings.budget_tokens > stats["eligible_tokens"]:
        raise SelectkitError(
            f"{param_option('budget_tokens', settings.budget_tokens)} is more than the "
            f"{stats['eligible_tokens']} tokens of the eligible documents; lower it"
        )
    quotas = split_budget(doc_budget if doc_budget is not None else settings.budget_tokens, shares)
    cum = np.cumsum(quotas)
    slack = stats["max_tokens"] or 0
    size = doc_budget if doc_budget is not None else settings.budget_tokens

    def sized(amount: int, slack_docs: int = 0) -> tuple[int | None, int | None]:
        # target j skips what earlier targets took: j documents' worth of tokens of slack
        if doc_budget is not None:
            return (amount, None)
        return (None, amount + slack_docs * slack)

    replace = settings.mode == "replace"
    spec = SelectSpec(
        features=cfg,
        reading=_reading(settings),
        log_ratio=log_ratio,
        min_tokens=settings.min_tokens,
        noise="gumbel" if settings.mode == "gumbel" else "none",
        seed=seed,
        buffers=None if replace else tuple(sized(int(cum[j]), j) for j in range(n_targets)),
        baseline=sized(int(size)),
        draws=tuple(int(q) for q in quotas) if replace else None,
    )
    merged = CandidateMerge(spec, seed)
    label = "dsir: weighing documents"
    for part in eng.map(select_shard, shards, shared=spec, label=label, total=len(shards)):
        merged.add(part)
    check_ids_agree(merged.has_ids, shards, settings.id_col)
    total_rows = merged.pool_rows
    if total_rows == 0:
        raise SelectkitError("the input has no rows; give a corpus with documents")
    rows, scores, weights, target = _final(merged.buffers, merged.reservoirs, quotas, doc_budget)
    if doc_budget is not None and rows.size < doc_budget and settings.mode != "replace":
        raise SelectkitError(
            f"budget {doc_budget} is larger than the pool: only {rows.size} documents have at "
            f"least {param_option('min_tokens', settings.min_tokens)} tokens"
        )
    store = merged.store
    sel_counts = store.counts(rows, weights, cfg.buckets)
    _keys, base_rows, base_tokens, _ = merged.baseline.ranked()
    keep = prefix_length(base_tokens, doc_budget, settings.budget_tokens)
    base_counts = store.counts(base_rows[:keep], np.ones(keep), cfg.buckets)
    ids = store.ids_of(rows)
    ids_out = None if ids is None else ids.to_list()
    n = cfg.ngrams  # F n-grams of up to n tokens come from (F + n(n-1)/2) // n tokens
    tokens_sel = int(((store.lengths(rows) + n * (n - 1) // 2) // n).sum())
    metrics = {
        "pool_rows": total_rows,
        "eligible_rows": stats["eligible"] if stats["eligible"] is not None else None,
        "selected_rows": int(rows.size),
        "selected_tokens": tokens_sel,
        "budget_rows": doc_budget,
        "budget_tokens": settings.budget_tokens,
        "target_quotas": [int(q) for q in quotas],
        "_selected_counts": sel_counts,
        "_baseline_counts": base_counts,
    }
    extra = {"truncated": merged.truncated, "inputs": merged_inputs(merged.sources)}
    return merged.global_rows(rows, shards), ids_out, scores, weights, target, metrics, extra


def _final(buffers, reservoirs, quotas, doc_budget):
    """Each target in turn takes its quota from its ranking, skipping documents an earlier target
    took (without replacement); with replacement the targets' draws are merged."""
    rows_all, scores_all, weights_all, target_all = [], [], [], []
    taken = np.empty(0, np.int64)
    for j, quota in enumerate(quotas):
        if quota <= 0:
            continue
        if reservoirs is not None:
            rows, draws, _tokens, scores = reservoirs[j].result()
            weights = draws.astype(np.float64)
        else:
            _keys, rows, tokens, scores = buffers[j].ranked()
            fresh = ~np.isin(rows, taken)
            rows, tokens, scores = rows[fresh], tokens[fresh], scores[fresh]
            if doc_budget is not None:
                keep = min(int(quota), rows.size)
            else:
                keep = prefix_length(tokens, None, int(quota))
            rows, scores = rows[:keep], scores[:keep]
            weights = np.ones(rows.size)
            taken = np.concatenate((taken, rows))
        rows_all.append(rows)
        scores_all.append(scores)
        weights_all.append(weights)
        target_all.append(np.full(rows.size, j, dtype=np.int64))
    if not rows_all:
        return (np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0, np.int64))
    rows, scores, weights, target = map(
        np.concatenate, (rows_all, scores_all, weights_all, target_all)
    )
    if reservoirs is not None and len(rows_all) > 1:
        # the same document drawn for two targets: one manifest row, draws summed
        uniq, first, inv = np.unique(rows, return_index=True, return_inverse=True)
        summed = np.bincount(inv, weights=weights)
        order = np.sort(first)
        keep_rows = rows[order]
        pos = np.searchsorted(uniq, keep_rows)
        return keep_rows, scores[order], summed[pos], target[order]
    return rows, scores, weights, target
