"""DSIR end to end: fit the target and raw n-gram distributions, weigh every document, select.

At most two streamed passes over the raw corpus: pass 1 counts its n-grams (skipped when a saved
model is given and the budget needs no corpus totals), pass 2 weighs each document and keeps only
the running top list. Memory is O(buckets x targets + budget + workers x batch), flat in corpus
size; the selected documents' n-gram buckets are kept (about 4 bytes per token) to measure the
KL reduction exactly.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selectkit.budget import parse_budget
from selectkit.console import progress_bar
from selectkit.dsir.model import DsirModel, kl_divergence
from selectkit.dsir.parallel import Executor, default_workers
from selectkit.dsir.resample import Reservoir, TopKBuffer, prefix_length
from selectkit.dsir.sources import CHUNK_ROWS, FileChunks, FrameChunks
from selectkit.dsir.weigh import FeatureConfig, fit_chunk, weigh_chunk
from selectkit.errors import SelectkitError, SelectkitUsageError, option, param_option
from selectkit.rng import derive_rng
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
    """What DSIR picked: global rows (input order), ids (None = rows are the ids), log-weights,
    weights (draws with replacement, else 1), target index per pick, plus metrics and timings."""

    rows: np.ndarray
    ids: list[Any] | None
    scores: np.ndarray
    weights: np.ndarray
    target: np.ndarray
    target_names: list[str]
    metrics: dict[str, Any]
    params: dict[str, Any]
    timings: dict[str, float]


def fit_target(
    paths: list[str], settings: DsirSettings, cap: TextCap | None = None
) -> tuple[np.ndarray, int]:
    """n-gram counts (B,) and token total of the target files, in this process; texts longer
    than ``settings.max_chars`` are cut (counted in ``cap`` when given)."""
    src = FileChunks(paths, settings.text_col, settings.id_col)  # format by extension
    src.cap = cap if cap is not None else settings.text_cap()
    counts = np.zeros(settings.features.buckets, dtype=np.int64)
    tokens = 0
    try:
        for chunk in src.chunks():
            c, t = fit_chunk(chunk.texts, settings.features)
            counts += c
            tokens += int(t.sum())
    finally:
        src.close()
    if tokens == 0:
        raise SelectkitError(
            f"target '{', '.join(paths)}' has no tokens in column '{settings.text_col}'; give "
            "a target corpus with text"
        )
    return counts, tokens


def _target_model(settings: DsirSettings, cap: TextCap) -> tuple[np.ndarray, list[str], np.ndarray]:
    if not settings.targets:
        raise SelectkitUsageError(
            f"strategy 'dsir' needs a target corpus: add {param_option('target', 'FILE')} "
            f"(repeatable), or a saved model with {param_option('model', 'FILE.npz')}"
        )
    fitted = []
    truncated = 0
    for target in settings.targets:  # each target is read once: its truncations add up
        fitted.append(fit_target([target], settings, cap))
        truncated += cap.truncated
    cap.truncated = truncated
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


def _workers(settings: DsirSettings, source: FileChunks | FrameChunks) -> int:
    if settings.workers:
        return settings.workers
    if isinstance(source, FrameChunks):
        return 1
    try:
        size = source.total_bytes()
    except OSError:
        size = INLINE_BELOW_BYTES  # unreadable: the read itself reports it
    return default_workers() if size >= INLINE_BELOW_BYTES else 1


class _Store:
    """Side store for the documents still in some top list: id and n-gram buckets by global row."""

    def __init__(self) -> None:
        self.ids: dict[int, Any] = {}
        self.feats: dict[int, np.ndarray] = {}

    def add(
        self,
        rows: np.ndarray,
        ids: list[Any] | None,
        ptr: np.ndarray,
        buckets: np.ndarray,
        at: np.ndarray,
    ) -> None:
        """Keep rows ``rows`` whose n-grams are CSR rows ``at`` of (``ptr``, ``buckets``)."""
        starts, stops = ptr[at].tolist(), ptr[at + 1].tolist()
        for i, row in enumerate(rows.tolist()):
            self.feats[row] = buckets[starts[i] : stops[i]].copy()
            if ids is not None:
                self.ids[row] = ids[i]

    def keep_only(self, live: np.ndarray) -> None:
        keep = set(live.tolist())
        self.feats = {r: f for r, f in self.feats.items() if r in keep}
        self.ids = {r: v for r, v in self.ids.items() if r in keep}


def run_dsir(
    source: FileChunks | FrameChunks,
    budget: int | float | str | None,
    seed: int,
    settings: DsirSettings,
) -> DsirResult:
    """Select from ``source`` with DSIR; see the module doc. ``budget`` counts documents (a count,
    fraction or percentage of the eligible ones); ``settings.budget_tokens`` counts tokens
    instead. ``seed`` is an integer base for every random stream (noise per target and batch)."""
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
    t0 = time.perf_counter()
    target_cap = settings.text_cap()
    source.cap = settings.text_cap()
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
    workers = _workers(settings, source)
    need_pass1 = (
        not settings.model
        or (budget is not None and not str(budget).strip().isdigit())
        or (settings.budget_tokens is not None and n_targets > 1)
    )
    stats = {"rows": None, "eligible": None, "eligible_tokens": None, "max_tokens": None}
    try:
        with Executor(workers) as ex:
            if need_pass1:
                t0 = time.perf_counter()
                raw = np.zeros(cfg.buckets, dtype=np.int64)
                rows = eligible = eligible_tokens = max_tokens = 0
                with progress_bar("dsir: counting n-grams", None, rate=True) as bar:
                    tasks = ((c.texts, cfg) for c in source.chunks())
                    for counts, toks in ex.map(fit_chunk, tasks):
                        raw += counts
                        ok = toks >= settings.min_tokens
                        rows += toks.size
                        eligible += int(ok.sum())
                        eligible_tokens += int(toks[ok].sum())
                        if ok.any():
                            max_tokens = max(max_tokens, int(toks[ok].max()))
                        bar.advance(toks.size)
                stats = {
                    "rows": rows,
                    "eligible": eligible,
                    "eligible_tokens": eligible_tokens,
                    "max_tokens": max_tokens,
                }
                if rows == 0:
                    raise SelectkitError("the input has no rows; give a corpus with documents")
                if not settings.model:
                    model.raw_counts = raw.astype(np.float64)
                timings["fit_raw_s"] = time.perf_counter() - t0
            if settings.save_model:
                model.save(settings.save_model)
            log_ratio = model.log_ratio()
            t0 = time.perf_counter()
            picked = _weigh_and_select(
                ex, source, budget, seed, settings, cfg, log_ratio, shares, stats
            )
            timings["weigh_select_s"] = time.perf_counter() - t0
    finally:
        source.close()
    rows_out, ids, scores, weights, target, metrics = picked
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
            "docs_per_s": round(total_rows / max(elapsed, 1e-9), 1),
            "truncated_texts": source.cap.truncated,
            "truncated_target_texts": target_cap.truncated,
        }
    )
    # one line for both: the corpus counts one pass (both passes cut the same texts)
    warn_truncated(source.cap.truncated + target_cap.truncated, settings.max_chars)
    params = {
        "ngrams": cfg.ngrams,
        "buckets": cfg.buckets,
        "hash": cfg.hash_name,
        "smoothing": model.smoothing,
        "quotas_resolved": [round(float(s), 6) for s in shares],
        "workers_resolved": workers,
        "targets": model.target_names,
        **source.cap.record(),
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
        {k: round(v, 6) for k, v in timings.items()},
    )


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts


def _weigh_and_select(ex, source, budget, seed, settings, cfg, log_ratio, shares, stats):
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

    def new_buffer(amount: int, slack_docs: int = 0) -> TopKBuffer:
        if doc_budget is not None:
            return TopKBuffer(count=amount)
        return TopKBuffer(need_tokens=amount + slack_docs * slack)

    if settings.mode == "replace":
        reservoirs = [Reservoir(int(q)) if q > 0 else None for q in quotas]
        buffers = None
    else:
        reservoirs = None
        buffers = [new_buffer(int(cum[j]), j) for j in range(n_targets)]
    baseline = new_buffer(int(size))
    noise = "gumbel" if settings.mode == "gumbel" else "none"
    store = _Store()
    pending: deque = deque()

    def thresholds() -> np.ndarray:
        ranked = buffers if buffers is not None else []
        targets = [b.threshold for b in ranked] or [-np.inf] * n_targets
        return np.array([*targets, baseline.threshold])

    def tasks():
        for chunk in source.chunks():
            pending.append(chunk)
            yield (
                chunk.texts,
                cfg,
                log_ratio,
                settings.min_tokens,
                noise,
                seed,
                _doc_ids(chunk),
                thresholds(),
            )

    total_rows = 0
    with progress_bar("dsir: weighing documents", stats["rows"], rate=True) as bar:
        for res in ex.map(weigh_chunk, tasks()):
            chunk = pending.popleft()
            grow = chunk.row0 + res.rows
            total_rows += res.batch_rows
            placed = []
            for j in range(n_targets):
                ok = np.isfinite(res.keys[j])
                if buffers is not None:
                    buffers[j].add(
                        res.keys[j][ok], grow[ok], res.tokens[ok], res.logw[j][ok], res.ties[ok]
                    )
                elif reservoirs[j] is not None:
                    rng = derive_rng(seed, "dsir", "draws", j, chunk.file, chunk.index)
                    placed.append(reservoirs[j].add(res.logw[j][ok], grow[ok], res.tokens[ok], rng))
            ok = np.isfinite(res.keys[-1])
            baseline.add(res.keys[-1][ok], grow[ok], res.tokens[ok], res.logw[-1][ok], res.ties[ok])
            # keep ids and n-grams only of rows that can still end up selected
            keep = res.keys[-1] >= baseline.threshold
            if buffers is not None:
                for j, b in enumerate(buffers):
                    keep |= res.keys[j] >= b.threshold
            elif placed:
                keep |= np.isin(grow, np.concatenate(placed))
            keep &= np.isfinite(res.keys).any(axis=0)
            if keep.any():
                at = np.flatnonzero(keep)
                ids = None if chunk.ids is None else chunk.ids.gather(res.rows[at]).to_list()
                store.add(grow[at], ids, res.feat_ptr, res.feat_bucket, at)
            if len(store.feats) > 4 * CHUNK_ROWS + 2 * _live_size(buffers, reservoirs, baseline):
                store.keep_only(_live(buffers, reservoirs, baseline))
            bar.advance(res.batch_rows)
    if total_rows == 0:
        raise SelectkitError("the input has no rows; give a corpus with documents")
    rows, scores, weights, target = _final(buffers, reservoirs, quotas, doc_budget)
    if doc_budget is not None and rows.size < doc_budget and settings.mode != "replace":
        raise SelectkitError(
            f"budget {doc_budget} is larger than the pool: only {rows.size} documents have at "
            f"least {param_option('min_tokens', settings.min_tokens)} tokens"
        )
    sel_counts = _counts(store, rows, weights, cfg.buckets)
    _keys, base_rows, base_tokens, _ = baseline.ranked()
    keep = prefix_length(base_tokens, doc_budget, settings.budget_tokens)
    base_counts = _counts(store, base_rows[:keep], np.ones(keep), cfg.buckets)
    ids_out = None if not store.ids else [store.ids[r] for r in rows.tolist()]
    n = cfg.ngrams  # F n-grams of up to n tokens come from (F + n(n-1)/2) // n tokens
    tokens_sel = int(sum((len(store.feats[r]) + n * (n - 1) // 2) // n for r in rows.tolist()))
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
    return rows, ids_out, scores, weights, target, metrics


def _doc_ids(chunk) -> object:
    """What a document's noise and tie-break derive from: its id, or without ids its global row
    number (which is also its manifest id)."""
    if chunk.ids is not None:
        return chunk.ids
    return np.arange(chunk.row0, chunk.row0 + chunk.texts.len(), dtype=np.int64)


def _counts(store: _Store, rows: np.ndarray, weights: np.ndarray, buckets: int) -> np.ndarray:
    """Summed n-gram counts (B,) of ``rows``, each counted ``weights`` times."""
    if rows.size == 0:
        return np.zeros(buckets)
    feats = [store.feats[r] for r in rows.tolist()]
    lengths = np.array([f.size for f in feats])
    return np.bincount(
        np.concatenate(feats).astype(np.int64),
        weights=np.repeat(weights, lengths),
        minlength=buckets,
    ).astype(np.float64)


def _live(buffers, reservoirs, baseline: TopKBuffer) -> np.ndarray:
    baseline.prune()
    parts = [baseline.rows]
    if buffers is not None:
        for b in buffers:
            b.prune()
            parts.append(b.rows)
    else:
        parts.extend(r.live_rows() for r in reservoirs if r is not None)
    return np.unique(np.concatenate(parts))


def _live_size(buffers, reservoirs, baseline: TopKBuffer) -> int:
    size = baseline.rows.size + baseline._pending_rows
    if buffers is not None:
        return size + sum(b.rows.size + b._pending_rows for b in buffers)
    return size + sum(r.k for r in reservoirs if r is not None)


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
