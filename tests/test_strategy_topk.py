"""topk: the importance-score baseline."""

from __future__ import annotations

import numpy as np

from selectkit import Pool, select


def test_highest_and_lowest_scores_first_ties_to_the_earlier_row():
    scores = np.array([0.5, 0.9, 0.1, 0.9, 0.3])
    pool = Pool.from_arrays(np.zeros((5, 2), np.float32), score=scores)
    _, sel = select(pool, "topk", 3, params={"order": "high"})
    assert sel.indices.tolist() == [1, 3, 0]
    assert sel.scores.tolist() == [0.9, 0.9, 0.5]
    _, sel = select(pool, "topk", 2, params={"order": "low"})
    assert sel.indices.tolist() == [2, 4]


def test_labels_are_data_and_labelled_col_keeps_rows_out():
    scores = np.array([0.5, 0.9, 0.1])
    pool = Pool.from_arrays(np.zeros((3, 2), np.float32), labels=[None, 1, None], score=scores)
    _, sel = select(pool, "topk", 1)  # topk prunes labelled data: a label is no reason to skip
    assert sel.indices.tolist() == [1]
    _, sel = select(pool, "topk", 1, labelled_col="label")
    assert sel.indices.tolist() == [0]
