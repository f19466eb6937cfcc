"""The leakage attacker: a cross-validated linear classifier and its ROC AUC."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged): the Mann-Whitney U of the positives, scaled."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def attack_auc(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, repeats: int = 5,
               seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """Out-of-fold ROC AUC of an L2 logistic regression, with a 95 % bootstrap interval.

    Folds keep each group (a block of the recording) together, so that near-identical
    windows (sharing delivered frames) are seldom on both sides of a split, which would
    push the AUC of a coarse product *below* chance.

    Parameters
    ----------
    x : ndarray, shape (n_windows, n_features)
        What the attacker sees of each window.
    y : ndarray, shape (n_windows,)
        1 for a stimulus-locked window, 0 for another.
    groups : ndarray, shape (n_windows,)
        The block of the recording each window belongs to.
    repeats : int
        Repetitions of the stratified group k-fold split (k = 5, or fewer for tiny data).
    seed : int
        Seed of the splits and of the bootstrap.
    n_boot : int
        Bootstrap resamples of the windows for the interval.

    Returns
    -------
    result : dict
        ``auc`` (of the out-of-fold scores averaged over repeats), ``auc_ci`` [low, high],
        ``auc_cv_sd`` (spread over repeats) and ``n_splits``; ``auc`` is None if a class
        has fewer than two windows.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    n_min = int(min(y.sum(), y.size - y.sum())) if y.size else 0
    n_groups = len(np.unique(groups))
    if n_min < 2 or n_groups < 4 or x.ndim != 2 or x.shape[1] == 0:
        return {"auc": None, "auc_ci": [None, None], "auc_cv_sd": None, "n_splits": 0}
    n_splits = min(5, n_min, n_groups // 2)
    scores = np.zeros((repeats, y.size))
    # One BLAS thread: the fits are small, and threads only contend (on a busy machine,
    # many-fold) for the time each tiny iteration takes.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        # A non-converged fit on a hopeless feature set is still a valid (weak) attacker.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for r in range(repeats):
            outer = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + r)
            for train, test in outer.split(x, y, groups):
                base = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
                n_inner = min(3, len(np.unique(groups[train])))
                if n_inner >= 2:
                    model = GridSearchCV(base, {"logisticregression__C": np.logspace(-4, 1, 6)},
                                         cv=GroupKFold(n_splits=n_inner), scoring="roc_auc")
                    model.fit(x[train], y[train], groups=groups[train])
                else:  # too few blocks to tune on: the default strength
                    model = base.fit(x[train], y[train])
                scores[r, test] = model.decision_function(x[test])
    per_repeat = [_auc(y, s) for s in scores]
    mean = scores.mean(axis=0)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        if 0 < y[idx].sum() < y.size:
            boots.append(_auc(y[idx], mean[idx]))
    low, high = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    return {"auc": round(_auc(y, mean), 4), "auc_ci": [round(float(low), 4), round(float(high), 4)],
            "auc_cv_sd": round(float(np.std(per_repeat)), 4), "n_splits": n_splits}


__all__ = ["attack_auc"]
