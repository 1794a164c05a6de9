"""``python -m skmoe.reproduce ggmoe-rates`` on a tiny grid."""

import csv

import pytest

from skmoe.reproduce import ggmoe_rates, main


def test_ggmoe_rates_writes_plot_and_table(tmp_path, capsys):
    grid = {"sample_sizes": [300, 900, 2700], "n_repetitions": 2}
    results = ggmoe_rates(tmp_path, models=(2,), n_components=(3, 4), grid=grid)
    png = (tmp_path / "ggmoe_rates.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "ggmoe_rates_slopes.csv") as f:
        rows = list(csv.DictReader(f))
    d1 = {int(r["n_components"]): float(r["slope"]) for r in rows if r["quantity"] == "D1"}
    # The table holds the slopes of the returned results.
    for res in results:
        assert d1[res.n_components] == pytest.approx(res.slopes["D1"][0], abs=5e-5)
    assert "total time" in capsys.readouterr().out


def test_unknown_study_is_rejected():
    with pytest.raises(SystemExit):
        main(["no-such-study"])
