"""Coverage-centric coreset selection (CCS; Zheng et al., ICLR 2023).

Importance-score pruning keeps only the hardest examples, which at high pruning rates covers the
data worse than random. CCS first drops the hardest ``beta`` fraction (often mislabelled), then
cuts the remaining score range into equal-width strata and spreads the budget over them, filling
the smallest strata first, with uniform draws inside each. The budget counts on the whole pool.
"""

from __future__ import annotations

import re

import numpy as np

from selectkit.console import warn
from selectkit.pool import Pool
from selectkit.strategies.allocation import draw_within_groups, fill_smallest_first
from selectkit.strategies.base import AUTO, LABELS_AS_DATA, Param, Selection, register_strategy

# Score names where a high value means a hard example (matched as whole words of the column
# name, e.g. `el2n` or `train_loss`); for the rest (AUM, margins, `score`) low means hard.
HIGH_IS_HARD = ("forgetting", "el2n", "loss", "entropy", "grand")


def default_beta(pruning_rate: float) -> float:
    """The hard-cutoff fraction for a pruning rate: 0 up to 50%, then 0.1 / 0.2 / 0.3 at up to
    70% / 80% / above (the values the CCS authors use on CIFAR and ImageNet)."""
    if pruning_rate <= 0.5:
        return 0.0
    if pruning_rate <= 0.7:
        return 0.1
    if pruning_rate <= 0.8:
        return 0.2
    return 0.3


def hard_is_high(score_name: str, hard: str) -> bool:
    """Whether high scores are the hard ones: ``hard`` = high|low, or auto from the column name."""
    if hard != AUTO:
        return hard == "high"
    words = re.split(r"[^a-z0-9]+", score_name.lower())
    return any(word in HIGH_IS_HARD for word in words)


def equal_width_strata(scores: np.ndarray, strata: int) -> np.ndarray:
    """Stratum (0..strata-1) of each score over ``strata`` equal-width bins spanning
    [min, max]; the maximum falls in the last bin (no shrunken edge when scores are negative)."""
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        return np.zeros(scores.size, dtype=np.int64)
    width = (hi - lo) / strata
    return np.clip(np.floor((scores - lo) / width), 0, strata - 1).astype(np.int64)


@register_strategy(
    "ccs",
    summary="Coverage-centric coreset: drop the hardest beta fraction by score, then sample "
    "evenly across equal-width score strata (Zheng et al. 2023).",
    needs=("score",),
    params={
        "beta": Param(
            float,
            AUTO,
            "fraction of the pool, hardest first, dropped before sampling; auto: 0 up to 50% "
            "pruning, 0.1 at 70%, 0.2 at 80%, 0.3 above",
            low=0.0,
            high=1.0,
            high_open=True,
        ),
        "strata": Param(int, 50, "number of equal-width score strata", low=1, high=1_000_000),
        "hard": Param(
            str,
            AUTO,
            "which end of the score is hard: low (AUM, margin) or high (forgetting, EL2N, loss); "
            "auto reads the score column's name",
            choices=(AUTO, "low", "high"),
        ),
    },
    labels=LABELS_AS_DATA,  # pruning labelled training data: every row competes
    cost="O(n log n) time, O(n) memory.",
)
def ccs(
    pool: Pool,
    budget: int,
    rng: np.random.Generator,
    beta: float | str = AUTO,
    strata: int = 50,
    hard: str = AUTO,
) -> Selection:
    """Return ``budget`` rows drawn across score strata after the hard cutoff; the manifest
    score is each row's own score. O(n log n)."""
    candidates = pool.candidates
    n = candidates.size
    score_name = pool.columns.score
    scores = pool.values("score")[candidates]
    pruning_rate = 1.0 - budget / n
    beta_used = default_beta(pruning_rate) if beta == AUTO else float(beta)
    high = hard_is_high(score_name, str(hard))
    # never cut so deep that fewer rows than the budget remain
    cut = min(int(np.floor(beta_used * n)), n - budget)
    if cut < int(np.floor(beta_used * n)):
        warn(
            f"ccs: beta={beta_used:g} would leave fewer than the budget's {budget} rows; "
            f"cutting {cut} rows (beta={cut / n:.4g}) instead"
        )
        beta_used = cut / n
    hardness = -scores if high else scores  # ascending = hardest first
    order = np.lexsort((np.arange(n), hardness))
    kept = np.sort(order[cut:])
    # only non-empty strata matter: dense codes keep memory O(n) however many strata are asked
    used, stratum = np.unique(equal_width_strata(scores[kept], strata), return_inverse=True)
    counts = fill_smallest_first(np.bincount(stratum), budget)
    picks = kept[draw_within_groups(stratum, counts, rng)]
    picks = picks[rng.permutation(picks.size)]  # no stratum order in the ranks
    return Selection(
        indices=candidates[picks],
        scores=scores[picks],
        params={"beta": beta_used, "hard": "high" if high else "low"},
        metrics={
            "ccs_cut_rows": cut,
            "ccs_nonempty_strata": int(used.size),
        },
    )
