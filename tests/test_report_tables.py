"""The report's tables: the ablation with emphasis only where a paired test says so, the claims
with their Holm-adjusted verdicts, and the analysis that pools seeds and acquisitions."""
import numpy as np
import pandas as pd
import pytest

from iugc.config import load_preset
from iugc.errors import UserError
from iugc.geometry import LANDMARKS
from iugc.report import analysis
from iugc.report.tables import (ablation_table, caption, claims_caption, published_claims, published_table2,
                                render, render_claims)

VARIANTS = load_preset("smoke")["variants"]


def prediction_table(errors: np.ndarray, groups: np.ndarray, aop_error=None) -> pd.DataFrame:
    """A stand-in per-frame table with the columns the analysis reads."""
    n = len(errors)
    table = pd.DataFrame({"filename": [f"{i:05d}.png" for i in range(n)], "group": groups, "mre": errors,
                          "aop_error": errors if aop_error is None else aop_error,
                          "aop": np.linspace(90, 150, n), "aop_undefined": False})
    for landmark in LANDMARKS:
        table[f"re_{landmark}"] = errors
    return table


def study(offsets: dict[str, float], seeds=(1, 2, 3), n=40, noise=1.0) -> analysis.Study:
    """Variants whose errors are one common frame difficulty plus an offset and a little noise."""
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(5, 30, n)
    groups = np.arange(n) // 5
    runs = {name: {seed: prediction_table(difficulty + offset + rng.normal(0, noise, n), groups)
                   for seed in seeds} for name, offset in offsets.items()}
    return analysis.Study.from_tables(runs, list(offsets))


def test_emphasis_only_where_the_difference_is_significant():
    clear = study({"a": 0.0, "b": 3.0, "c": 6.0})
    assert analysis.significant_ranks(clear, "mre", 0.95, 0.05) == {"a": 1, "b": 2, "c": 0}
    tied = study({"a": 0.0, "b": 0.05, "c": 6.0}, noise=3.0)
    assert analysis.significant_ranks(tied, "mre", 0.95, 0.05) == {"a": 0, "b": 0, "c": 0}


def test_table_follows_table2_and_states_what_it_rests_on():
    offsets = {name: 3.0 * i for i, name in enumerate(VARIANTS)}
    s = study(offsets)
    numbers = analysis.variant_table(s, 0.95, [5, 10])
    ranks = {m: analysis.significant_ranks(s, m, 0.95, 0.05) for m in analysis.METRICS}
    table = ablation_table(VARIANTS, numbers, ranks, {"hrnet": "HRNet (x)"})
    assert list(table["variant"]) == list(VARIANTS)
    assert list(table["Output"])[-3:] == ["Coordinates", "Coordinates", "Heatmaps"]
    assert list(table["reference"]) == [False] * 7 + [True]
    assert (table["n_seeds"] == 3).all() and (table["n_groups"] == 8).all() and (table["n_frames"] == 40).all()
    text = caption({"source": "phantom", "name": "the built-in phantom (synthetic frames)"}, "smoke",
                   {"hrnet": "HRNet (x)"}, 3, 8, 40, 0.95, 0.05)
    md = render(table, "md", text)
    assert md.count("**") == 4 and md.count("<u>") == 2  # best and second of both metrics
    assert "phantom" in md and "'smoke'" in md and "NOT" in md and "3 seed(s)" in md and "8 acquisition(s)" in md
    assert "No predicted AoP was undefined" in md
    # Real frames in IUGC layout are named as the obtain stage recorded them, whatever their layout.
    named = caption({"source": "iugc2025", "name": "A few PSFHS frames"}, "quick", {}, 3, 16, 60, 0.95, 0.05)
    assert named.startswith("Ablation on A few PSFHS frames (a tree in IUGC 2025 layout")
    tex = render(table, "tex", text)
    assert "\\textbf{" in tex and "\\underline{" in tex and tex.count("\\\\") >= 8


MARGINS = {"mre": 2.0, "aop_mae": 2.0}


def test_claims_get_one_of_the_verdicts_and_a_plan():
    offsets = {name: 0.0 for name in VARIANTS}
    offsets["v2_moco_cbam_adv"] = -4.0       # the adversarial term helps, clearly
    offsets["v6_moco_cbam_coords"] = 4.0     # the coordinate head is worse: reversed
    s = study(offsets, noise=0.3)
    claims = analysis.claims_table(s, published_claims(), published_table2(), 0.95, 0.05, MARGINS, pixel_scale=0.5)
    verdict = {(r["claim"], r["metric"]): r["verdict"] for _, r in claims.iterrows()}
    assert verdict[("adversarial", "mre")] == "supported"
    assert verdict[("coordinate_head", "mre")] == "reversed at this scale"
    assert verdict[("cbam", "mre")] == "absent at this scale"   # 0 +- a little, well within 2 px
    assert (claims["p_holm"] >= claims["p"]).all()
    row = claims.set_index(["claim", "metric"]).loc[("adversarial", "mre")]
    assert row["paper_difference"] == pytest.approx(25.66 - 34.83)
    assert row["paper_difference_here"] == pytest.approx(0.5 * (25.66 - 34.83))
    assert row["mde"] > 0 and row["paper_direction_bound"] > 4.0 > row["paper_direction_bound"] - 2 * row["mde"]
    assert row["acquisitions_needed_10_seeds"] <= row["acquisitions_needed_3_seeds"]
    md = render_claims(claims, "md", claims_caption(3, 8, 40, 0.95, 0.05, MARGINS, len(claims)))
    assert "Holm" in md and "supported" in md and "absent at this scale" in md and "Detectable" in md


def test_a_noisy_small_study_is_underpowered_not_absent():
    offsets = {name: 0.0 for name in VARIANTS}
    s = study(offsets, noise=6.0)
    claims = analysis.claims_table(s, published_claims(), published_table2(), 0.95, 0.05, MARGINS)
    assert set(claims["verdict"]) == {"underpowered"}
    assert (claims["mde"] > 2.0).all()


def test_one_seed_cannot_support_a_claim_and_says_so():
    offsets = {name: 0.0 for name in VARIANTS}
    offsets["v2_moco_cbam_adv"] = -4.0
    s = study(offsets, seeds=(1,), noise=0.3)
    claims = analysis.claims_table(s, published_claims(), published_table2(), 0.95, 0.05, MARGINS)
    assert set(claims["verdict"]) == {"not testable at this size"}
    assert "cannot support any claim" in claims_caption(1, 8, 40, 0.95, 0.05, MARGINS, len(claims))


def test_a_nan_prediction_is_refused_with_variant_seed_and_frame():
    s = study({"a": 0.0, "b": 1.0})
    runs = {name: dict(zip(s.seeds, [t.copy() for t in tables])) for name, tables in s.tables.items()}
    runs["b"][2].loc[7, "mre"] = np.nan
    with pytest.raises(UserError, match="b seed 2: mre of frame 00007.png is not a number"):
        analysis.Study.from_tables(runs, ["a", "b"])


def test_variants_must_share_seeds_and_frames():
    s = study({"a": 0.0, "b": 1.0})
    runs = {name: dict(zip(s.seeds, tables)) for name, tables in s.tables.items()}
    runs["b"].pop(3)
    with pytest.raises(Exception, match="seeds"):
        analysis.Study.from_tables(runs, ["a", "b"])


def test_error_by_aop_range_counts_frames_and_acquisitions():
    s = study({"a": 0.0, "b": 1.0})
    for table in s.tables["a"]:
        table.loc[39, "aop"] = 180.0  # on the last edge: still counted
    table = analysis.by_aop_range(s, [0, 100, 120, 140, 180])
    assert set(table["aop_range"]) == {"0-100", "100-120", "120-140", "140-180"}
    mine = table[table["variant"] == "a"]
    assert mine["n_frames"].sum() == 40
    assert mine.set_index("aop_range").loc["140-180", "n_groups"] >= 1
    assert (mine["n_groups"] <= mine["n_frames"]).all()


def test_published_numbers_come_from_the_data_file():
    published = published_table2()
    assert published["v2_moco_cbam_adv"] == {"mre": 25.66, "aop_mae": 8.54}
    assert {c["id"] for c in published_claims()} >= {"adversarial", "cbam", "hrnet_over_resnet"}


def test_plan_study_reads_a_finished_claims_table(tmp_path, capsys):
    from iugc.cli import main

    offsets = {name: 0.0 for name in VARIANTS}
    s = study(offsets, noise=2.0)
    claims = analysis.claims_table(s, published_claims(), published_table2(), 0.95, 0.05, MARGINS)
    claims.to_csv(tmp_path / "claims.csv", index=False)
    plan = analysis.plan_from_claims(pd.read_csv(tmp_path / "claims.csv"), [3, 10])
    # the same plan as the table's own, and more seeds never need more acquisitions
    assert list(plan["3 seeds"].fillna(-1)) == list(claims["acquisitions_needed_3_seeds"].fillna(-1))
    assert (plan["10 seeds"].fillna(1e9) <= plan["3 seeds"].fillna(1e9)).all()
    assert main(["plan-study", "--claims", str(tmp_path / "claims.csv"), "--seeds", "3", "10"]) == 0
    assert "acq. for 10 seeds" in capsys.readouterr().out
    assert main(["plan-study", "--claims", str(tmp_path / "missing.csv")]) == 2
