"""The pandas and numpy core of :class:`~models.experiments.SegmentEffectModel`.

The model's likelihood is evaluated on per-cell statistics of the metric, one
cell per (segment, variant): :func:`cell_statistics`. The raw effects of the
segments on the link scale (log or logit) and their delta-method standard
errors, computed from the same cells, choose how the segment effects are
parameterised: :func:`centre_segment_effects`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from models.experiments._shrinkage import estimate_heterogeneity

__all__ = ["cell_statistics", "centre_segment_effects", "sorted_labels"]


def sorted_labels(values: Any) -> list:
    """Labels in their natural order, or by their text when they do not compare."""
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def cell_statistics(segment: pd.Series, variant: pd.Series, y: pd.Series,
                    control: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (segment, variant) cell ``n``, ``n_zero``, ``total``, ``total_sq``; the value counts.

    Cells are indexed by ``(segment, variant)``, segments sorted and the
    ``control`` variant first, then the other variants sorted; the histogram
    has each distinct ``value`` of ``y`` and the ``n`` users with it.
    """
    frame = pd.DataFrame({"segment": segment.to_numpy(), "variant": variant.to_numpy(),
                          "_y": y.to_numpy(), "_zero": (y == 0).to_numpy(),
                          "_y2": y.to_numpy() ** 2})
    cells = (frame.groupby(["segment", "variant"], sort=False)
             .agg(n=("_y", "size"), n_zero=("_zero", "sum"), total=("_y", "sum"),
                  total_sq=("_y2", "sum")))
    segments = sorted_labels(pd.unique(frame["segment"]))
    treatments = sorted_labels([v for v in pd.unique(frame["variant"]) if v != control])
    order = pd.MultiIndex.from_product([segments, [control, *treatments]],
                                       names=["segment", "variant"])
    cells = cells.reindex(order).astype("int64")
    values, n = np.unique(y.to_numpy(), return_counts=True)
    return cells, pd.DataFrame({"value": values, "n": n})


def centre_segment_effects(cells: pd.DataFrame, shape: tuple[int, int], likelihood: str) -> bool:
    """Whether the data pin the segment effects down enough to sample them centred.

    ``cells`` as from :func:`cell_statistics`, ``shape`` (segments, variants).
    Centred when the median standard error of the raw segment effects (delta
    method, from the cells' sums of squares) is below half their spread,
    estimated by DerSimonian-Laird per treatment; never with fewer than three
    segments with a finite raw effect.
    """
    n, total, total_sq = (cells[c].to_numpy(dtype=float).reshape(shape)
                          for c in ("n", "total", "total_sq"))
    mean = total / n
    with np.errstate(divide="ignore", invalid="ignore"):
        if likelihood == "negative_binomial":
            g = np.log(mean)
            se2 = (total_sq / n - mean**2) / (n * mean**2)
        else:
            g = special.logit(mean)
            se2 = 1.0 / (n * mean * (1.0 - mean))
        raw = g[:, 1:] - g[:, :1]
        se2 = se2[:, 1:] + se2[:, :1]
    ok = np.isfinite(raw) & np.isfinite(se2) & (se2 > 0)
    if shape[0] < 3 or ok.sum(axis=0).min() < 3:
        return False
    spread = np.mean([estimate_heterogeneity(raw[ok[:, k], k], np.sqrt(se2[ok[:, k], k]))
                      for k in range(raw.shape[1])])
    # centred only when the data clearly dominate: with standard errors close to
    # the (noisy) spread estimate, sigma_effect can still approach zero and the
    # centred form becomes the funnel (6 countries of ~250 users per arm: 15-35
    # divergences of 4,000 centred, none non-centred)
    return bool(np.median(np.sqrt(se2[ok])) < 0.5 * spread)
