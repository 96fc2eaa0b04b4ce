import numpy as np

from iugc.config import load_preset
from iugc.report.tables import ablation_table, caption, published_table2, render


def _metrics(params):
    out = {}
    for i, name in enumerate(params["variants"]):
        mre = [30.0, 10.0, 20.0, 25.0, 40.0, 15.0, 35.0][i]
        out[name] = {"mre": mre, "mre_ci": [mre - 1, mre + 1], "aop_mae": 100 - mre, "aop_mae_ci": [1, 2],
                     "re_ps1": mre, "re_ps2": mre, "re_fh1": mre, "n_frames": 12}
    return out


def test_table_follows_table2_with_best_bold_and_second_underlined():
    params = load_preset("smoke")
    table = ablation_table(params, _metrics(params))
    assert list(table["variant"]) == list(params["variants"])
    assert list(table["Output"])[-2:] == ["Coordinates", "Coordinates"]
    md = render(table, "md", caption("phantom", params["preset"], {"hrnet": "HRNet (x)"}))
    assert "**10.00**" in md and "<u>15.00</u>" in md           # MRE best and second
    assert "**60.00**" in md and "<u>65.00</u>" in md         # AoP MAE: 100 - MRE
    assert "phantom" in md and "'smoke'" in md and "NOT" in md
    tex = render(table, "tex", "cap")
    assert "\\textbf{10.00}" in tex and "\\underline{15.00}" in tex and tex.count("\\\\") >= 8


def test_published_numbers_come_from_the_data_file():
    published = published_table2()
    assert published["v2_moco_cbam_adv"] == {"mre": 25.66, "aop_mae": 8.54}
    params = load_preset("paper")
    table = ablation_table(params, _metrics(params))
    assert np.isclose(table.loc[1, "paper MRE"], 25.66) and np.isclose(table.loc[0, "paper AoP MAE"], 11.24)
