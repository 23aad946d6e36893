"""The group likeness report (issue 47): made-up faces and verdicts, every group printed, each
figure the share of its own group's faces."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.metrics import masked_psnr
from train.likeness import identified
from train.studies.group_likeness import format_table, group_table, verified
from train.utkface import AGE_BANDS, GENDERS, RACES, Portrait, age_band


def made_up_portraits() -> list[Portrait]:
    """Two of every race × age band × gender: 100 portraits."""
    return [Portrait(Path(f"{i}.jpg"), low + copy, gender, race)
            for i, (race, (low, _), gender, copy) in enumerate(
                (r, band, g, c) for r in range(len(RACES)) for band in AGE_BANDS for g in (0, 1) for c in (0, 1))]


def test_the_report_prints_every_group_with_its_own_share():
    portraits = made_up_portraits()
    black = np.array([p.race == 1 for p in portraits], float)
    rows = group_table(portraits, {"refined mobilefacenet": 1 - black, "refined psnr": np.full(len(portraits), 24.0)})
    by_group = {(row["grouping"], row["group"]): row for row in rows}
    assert by_group["all", "all"]["faces"] == 100
    assert by_group["race", "Black"]["refined mobilefacenet"] == 0.0
    assert by_group["race", "White"]["refined mobilefacenet"] == 1.0
    assert by_group["gender", "female"]["refined mobilefacenet"] == pytest.approx(0.8)
    assert by_group["age", "60+"]["faces"] == 20
    text = format_table(rows)
    for name in [*RACES, *GENDERS, *(age_band(low) for low, _ in AGE_BANDS)]:
        assert any(line.split()[1] == name for line in text.splitlines()[2:] if len(line.split()) > 1), name
    assert "80.0" in text and "24.0" in text  # shares in percent, PSNRs in dB


def test_an_empty_group_is_printed_as_such_not_dropped():
    portraits = [p for p in made_up_portraits() if p.race != 4]
    rows = group_table(portraits, {"encoder dlib": np.ones(len(portraits))})
    others = next(row for row in rows if row["group"] == "Others")
    assert others["faces"] == 0 and np.isnan(others["encoder dlib"])


def test_each_judge_verifies_by_its_own_rule():
    photos = np.eye(3, dtype=np.float32)
    faces = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1]], np.float32)
    assert verified(photos, faces, "mobilefacenet", 0.7).tolist() == [True, True, True]
    assert verified(photos, faces, "mobilefacenet", 0.9).tolist() == [True, False, True]
    assert verified(photos, faces, "dlib", 0.6).tolist() == [True, False, True]  # distances 0, 0.63, 0
    assert identified(photos, faces).tolist() == [True, True, True]
    assert identified(photos, faces[[1, 0, 2]]).tolist() == [False, False, True]  # the first two swapped


def test_the_psnr_counts_only_the_pixels_the_photo_covers():
    x = torch.zeros(1, 3, 8, 8)
    y = torch.full((1, 3, 8, 8), 0.1)
    coverage = torch.ones(1, 1, 8, 8)
    coverage[..., :4] = 0
    y[..., :4] = 1.0  # wildly wrong where the photo does not reach
    assert masked_psnr(x, y, coverage)[0] == pytest.approx(20.0, abs=1e-4)
    assert masked_psnr(x, y, coverage[0, 0])[0] == pytest.approx(20.0, abs=1e-4)  # one H×W mask for every image
