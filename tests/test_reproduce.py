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


def _forbid_fits(monkeypatch):
    """Make any fit of the study fail loudly: the check must come first."""
    import skmoe.reproduce as reproduce

    def no_fit(*args, **kwargs):  # pragma: no cover - reached only on regression
        raise AssertionError("convergence_rates ran before the matplotlib check")

    monkeypatch.setattr(reproduce, "convergence_rates", no_fit)


def test_missing_matplotlib_fails_before_any_work(tmp_path, monkeypatch):
    # Simulate a base install: ``import matplotlib`` raises ImportError.
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    _forbid_fits(monkeypatch)
    grid = {"sample_sizes": [300, 900], "n_repetitions": 1}
    with pytest.raises(ImportError, match=r"skmoe\[plot\]"):
        ggmoe_rates(tmp_path / "out", models=(1,), n_components=(3,), grid=grid)
    # Nothing was written either.
    assert not (tmp_path / "out").exists()


def test_cli_missing_matplotlib_exits_with_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    _forbid_fits(monkeypatch)
    with pytest.raises(SystemExit) as info:
        main(["ggmoe-rates", "--quick", "--output-dir", str(tmp_path / "out")])
    assert info.value.code == 2
    assert "pip install 'skmoe[plot]'" in capsys.readouterr().err
