"""``python -m skmoe.reproduce ggmoe-rates`` on a tiny grid."""

import csv

import numpy as np
import pytest

from skmoe.reproduce import QUICK_GRID, ggmoe_rates, main, read_fits

TINY = ({"models": (2,), "n_components": (3, 4), "sample_sizes": (300, 900),
         "n_repetitions": 2, "max_iter": 100, "n_init": 1},)


def test_ggmoe_rates_writes_tables_and_figures(tmp_path, capsys):
    result, paths = ggmoe_rates(tmp_path, grid=TINY)
    for key in ("loss_figure", "parameter_figure_near_truth", "parameter_figure_kmeans"):
        with open(paths[key], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(paths["slopes"]) as f:
        rows = list(csv.DictReader(f))
    # The slopes table holds the slopes of the returned result.
    expected = {(r["n_components"], r["start"], r["quantity"]): r
                for r in result.slopes("median")}
    assert len(rows) == len(expected)
    for row in rows:
        ref = expected[int(row["n_components"]), row["start"], row["quantity"]]
        assert float(row["slope"]) == pytest.approx(ref["slope"], abs=1e-12)
        assert float(row["predicted"]) == ref["predicted"]
    table = open(paths["table"]).read()
    assert "means_atoms" in table and "run time" in table
    # The rst tables: one per K, a header and 6 rows (D1 and the five groups)
    # of 6 cells per setting and start, quoting the slopes of the result.
    rst = open(paths["rst_table"]).read()
    assert rst.count(".. list-table::") == 2
    n_cells = len(result.cells)
    lines = rst.splitlines()
    assert sum(line.startswith("   * -") for line in lines) == 2 + 6 * n_cells
    assert sum(line.startswith("     -") for line in lines) == 5 * (2 + 6 * n_cells)
    for (k, start, key), row in expected.items():
        if key == "D1" or key.endswith("_atoms"):
            assert f"{row['slope']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" in rst
    assert "wrote" in capsys.readouterr().out
    # The fits CSV reads back into the same result.
    again = read_fits(paths["fits"])
    assert len(again.rows) == len(result.rows) == 2 * 2 * 2 * 2
    for a, b in zip(again.rows, result.rows):
        assert a["D1"] == pytest.approx(b["D1"], rel=1e-12)
        assert a["converged"] == b["converged"] and a["start"] == b["start"]
        assert np.isnan(a["means_atoms"]) == np.isnan(b["means_atoms"])


def test_from_csv_redoes_outputs_without_fitting(tmp_path, monkeypatch):
    _, paths = ggmoe_rates(tmp_path / "a", grid=TINY, verbose=0)
    _forbid_fits(monkeypatch)
    assert main(["ggmoe-rates", "--from-csv", paths["fits"],
                 "--output-dir", str(tmp_path / "b")]) == 0
    assert open(tmp_path / "b" / "ggmoe_rates_slopes.csv").read() == open(
        paths["slopes"]).read()


def test_resume_runs_no_fit_already_written(tmp_path, monkeypatch):
    _, paths = ggmoe_rates(tmp_path, grid=TINY, verbose=0)
    slopes = open(paths["slopes"]).read()
    import skmoe.experiments._rate_study as module

    def no_fit(*args):  # pragma: no cover - reached only on regression
        raise AssertionError("a fit already in the CSV ran again")

    monkeypatch.setattr(module, "_fit_once", no_fit)
    ggmoe_rates(tmp_path, grid=TINY, resume=True, verbose=0)
    assert open(paths["slopes"]).read() == slopes
    # Without resume the file is started afresh, so fits run.
    with pytest.raises(AssertionError, match="ran again"):
        ggmoe_rates(tmp_path, grid=TINY, verbose=0)


def test_quick_grid_has_both_starts_and_an_overfit():
    (block,) = QUICK_GRID
    assert 3 in block["n_components"] and 4 in block["n_components"]
    assert "starts" not in block  # both starts, the rate_study default


def test_unknown_study_is_rejected():
    with pytest.raises(SystemExit):
        main(["no-such-study"])


def _forbid_fits(monkeypatch):
    """Make any fit of the study fail loudly: the check must come first."""
    import skmoe.reproduce as reproduce

    def no_fit(*args, **kwargs):  # pragma: no cover - reached only on regression
        raise AssertionError("rate_study ran")

    monkeypatch.setattr(reproduce, "rate_study", no_fit)


def test_missing_matplotlib_fails_before_any_work(tmp_path, monkeypatch):
    # Simulate a base install: ``import matplotlib`` raises ImportError.
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    _forbid_fits(monkeypatch)
    with pytest.raises(ImportError, match=r"skmoe\[plot\]"):
        ggmoe_rates(tmp_path / "out", grid=TINY)
    # Nothing was written either.
    assert not (tmp_path / "out").exists()


def test_cli_missing_matplotlib_exits_with_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    _forbid_fits(monkeypatch)
    with pytest.raises(SystemExit) as info:
        main(["ggmoe-rates", "--quick", "--output-dir", str(tmp_path / "out")])
    assert info.value.code == 2
    assert "pip install 'skmoe[plot]'" in capsys.readouterr().err


def test_select_grid_restricts_blocks_or_builds_one():
    from skmoe.reproduce import FULL_GRID, _select_grid

    two_blocks = ({**FULL_GRID[0], "models": (1, 2)}, {**FULL_GRID[0], "models": (3, 4)})
    blocks = _select_grid(two_blocks, models=[2, 3], n_components=[4])
    assert [b["models"] for b in blocks] == [(2,), (3,)]
    assert all(b["n_components"] == (4,) for b in blocks)
    # The full grid is one block over every setting, K and size up to 10^6.
    (full,) = FULL_GRID
    assert full["models"] == (1, 2, 3, 4) and full["n_components"] == (3, 4)
    assert full["sample_sizes"][0] == 1000 and full["sample_sizes"][-1] == 10**6
    assert _select_grid(FULL_GRID, models=[1], n_components=[5]) == ()
    (custom,) = _select_grid(QUICK_GRID, sample_sizes=[300, 600], models=[1])
    assert custom["models"] == (1,) and custom["n_components"] == (3, 4)
    assert custom["sample_sizes"] == (300, 600) and custom["n_repetitions"] == 4


def test_cli_fit_settings_reach_every_fit(tmp_path):
    out = tmp_path / "out"
    assert main(["ggmoe-rates", "--output-dir", str(out), "--models", "2",
                 "--n-components", "4", "--sample-sizes", "300", "600",
                 "--n-repetitions", "1", "--starts", "kmeans", "--tol-total", "1e-12",
                 "--max-iter", "3", "--n-init", "1"]) == 0
    rows = read_fits(out / "ggmoe_rates_fits.csv").rows
    assert [r["start"] for r in rows] == ["kmeans", "kmeans"]
    # A tolerance no fit meets within 3 passes: every fit used the cap.
    assert all(r["n_iter"] == 3 and not r["converged"] for r in rows)
    assert not (out / "ggmoe_rates_parameters_near_truth.png").exists()


@pytest.mark.parametrize(
    "flag, value", [("--max-iter", "0"), ("--n-init", "0"), ("--tol-total", "0"),
                    ("--tol-total", "-1"), ("--starts", "everywhere")],
)
def test_cli_rejects_invalid_fit_settings(tmp_path, monkeypatch, flag, value):
    _forbid_fits(monkeypatch)
    with pytest.raises(SystemExit) as info:
        main(["ggmoe-rates", "--quick", "--output-dir", str(tmp_path), flag, value])
    assert info.value.code == 2
