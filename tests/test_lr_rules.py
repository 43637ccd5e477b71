"""lr-find's suggestion rules on made-up curves: each picks the point its definition names, the result says
which rule gave `suggested_lr`, and the printout says how it was picked."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainlab.workflows.lr_find import RULE, analyse, format_lr_find, steepest, suggestions, valley

LRS = list(np.logspace(-6, 0, 121))  # 20 points per decade


def curve(lr: float) -> float:
    """Flat at 2.3, falls by 2.0 around lr 1e-3 (a logistic in log10(lr), width ~1 decade), rises past 0.1."""
    x = np.log10(lr)
    return 2.3 - 2.0 / (1 + np.exp(-3 * (x + 3))) + 5 * max(0.0, x + 1) ** 2


def test_valley_is_halfway_into_the_longest_falling_stretch():
    # longest decreasing subsequence: 5, 4, 3, 2.5, 2, 1 (indices 0, 1, 3, 4, 6, 7): fastai's start = 7 - 6 = 1,
    # a third of its length 2, so the index is 1 + 2 + 1 = 4
    assert valley(list(range(10)), [5, 4, 6, 3, 2.5, 7, 2, 1, 1.5, 3]) == 4
    assert valley([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0]) == 0  # falls all along: start -1 + int(4/3) + int(4/9)


def test_each_rule_picks_its_point_on_a_smooth_curve():
    smoothed = [curve(lr) for lr in LRS]
    rules = suggestions(LRS, smoothed)
    lowest = LRS[int(np.argmin(smoothed))]
    assert 0.02 < lowest < 0.2  # the rise starts at 0.1
    assert rules["steepest"] == pytest.approx(1e-3, rel=0.15)  # the logistic's centre
    assert rules["minimum/10"] == pytest.approx(lowest / 10)
    # valley: halfway along the fall from the sweep's (skipped) start at ~4e-6 to the bottom: ~ 5e-4
    assert 1e-4 < rules["valley"] < rules["steepest"]
    assert steepest(LRS, smoothed) == int(np.argmin(np.gradient(smoothed, np.log(LRS))))


def test_the_result_and_the_printout_say_which_rule_was_used(tmp_path):
    smoothed = [curve(lr) for lr in LRS]
    result = analyse(LRS, smoothed, smoothed, 121)
    assert result["rule"] == RULE == "steepest" and result["suggested_lr"] == result["rules"]["steepest"]
    assert set(result["rules"]) == {"steepest", "valley", "minimum/10"}
    text = format_lr_find(result, Path(tmp_path))
    assert "= the steepest descent of the smoothed loss against log(lr)" in text
    assert f"valley {result['rules']['valley']:.2e}" in text and "minimum/10" in text
    assert f"train.lr={result['suggested_lr']:.2g}" in text
