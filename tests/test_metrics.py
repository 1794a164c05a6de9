"""Tests for skmoe.metrics: Voronoi losses, cell merges, per-parameter errors."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skmoe import GaussianGatedMoERegressor
from skmoe.datasets import ggmoe_paper_setting, make_gaussian_gated_moe
from skmoe.metrics import merge_cell, voronoi_cells, voronoi_loss, voronoi_parameter_errors

PARTS = ("means", "covariances", "coef", "intercept", "noise_covariances")


def _split_atom(truth, j, deltas, fractions):
    """Replace true atom j by len(deltas) atoms shifted by deltas (all parts)."""
    out = {key: [] for key in truth}
    for k in range(len(truth["weights"])):
        if k != j:
            for key in truth:
                out[key].append(truth[key][k])
            continue
        for delta, frac in zip(deltas, fractions):
            out["weights"].append(truth["weights"][k] * frac)
            for key in PARTS:
                out[key].append(truth[key][k] + delta[key])
    return {key: np.array(value) for key, value in out.items()}


def _delta(truth, eps):
    d = truth["means"].shape[1]
    return {
        "means": np.full(d, eps),
        "covariances": eps * np.eye(d),
        "coef": np.full((1, d), eps),
        "intercept": np.array([eps]),
        "noise_covariances": np.array([[eps]]),
    }


@pytest.mark.parametrize("model", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["D1", "D2"])
def test_zero_at_truth(model, kind):
    truth = ggmoe_paper_setting(model)
    assert voronoi_loss(truth, truth, kind) == 0.0


def test_invariant_to_permuting_fitted_components():
    X, y, truth = make_gaussian_gated_moe(3000, params=ggmoe_paper_setting(3),
                                          return_params=True, random_state=0)
    model = GaussianGatedMoERegressor(4, random_state=0).fit(X, y)
    base = voronoi_loss(model, truth, "D2", return_components=True)
    perm = np.array([2, 0, 3, 1])
    params = {key: getattr(model, key + "_")[perm] for key in
              ("weights", "means", "covariances", "coef", "intercept", "noise_covariances")}
    permuted = voronoi_loss(params, truth, "D2", return_components=True)
    assert_allclose(permuted[0], base[0], rtol=1e-12)
    for key in PARTS:
        assert_allclose(permuted[1][key], base[1][key], rtol=1e-12)


def test_singleton_cells_are_linear():
    truth = ggmoe_paper_setting(1)
    eps = 1e-3
    fitted = {key: value.copy() for key, value in truth.items()}
    for key, delta in _delta(truth, eps).items():
        fitted[key][1] = fitted[key][1] + delta
    # All five parts differ by eps (1-D norms are |eps|), weight 0.4.
    assert_allclose(voronoi_loss(fitted, truth), 0.4 * 5 * eps, rtol=1e-10)


@pytest.mark.parametrize("n_atoms, rbar", [(2, 4), (3, 6)])
def test_exponents_follow_cell_size(n_atoms, rbar):
    truth = ggmoe_paper_setting(1)
    eps = 0.01
    deltas = [_delta(truth, eps * (i + 1)) for i in range(n_atoms)]
    fitted = _split_atom(truth, 2, deltas, [1 / n_atoms] * n_atoms)
    expected = 0.0
    for i in range(n_atoms):
        e = eps * (i + 1)
        # mu^r + Sigma^(r/2) + a^2 + b^r + nu^(r/2), weight 0.3 / n_atoms
        expected += 0.3 / n_atoms * (e**rbar + e ** (rbar / 2) + e**2 + e**rbar + e ** (rbar / 2))
    assert_allclose(voronoi_loss(fitted, truth, "D1"), expected, rtol=1e-10)
    _, comp = voronoi_loss(fitted, truth, return_components=True)
    assert list(comp["cell_sizes"]) == [1, 1, n_atoms]
    assert_allclose(comp["means"], sum(0.3 / n_atoms * eps * (i + 1) for i in range(n_atoms)))
    assert comp["means_exact"] == 0.0


def test_type2_term_only_in_zero_mean_cells():
    truth = ggmoe_paper_setting(2)  # true atom 0 has mean exactly 0
    eps = 0.05
    deltas = [_delta(truth, eps), _delta(truth, 2 * eps), _delta(truth, 3 * eps)]
    in_zero_cell = _split_atom(truth, 0, deltas, [1 / 3] * 3)
    d1 = voronoi_loss(in_zero_cell, truth, "D1")
    d2 = voronoi_loss(in_zero_cell, truth, "D2")
    # Only the slope term changes: ||da||^2 -> ||da||^(6/2).
    a_diff = sum(0.3 / 3 * ((k * eps) ** 3 - (k * eps) ** 2) for k in (1, 2, 3))
    assert_allclose(d2 - d1, a_diff, rtol=1e-10)
    in_nonzero_cell = _split_atom(truth, 2, deltas, [1 / 3] * 3)
    assert voronoi_loss(in_nonzero_cell, truth, "D2") == voronoi_loss(in_nonzero_cell, truth, "D1")


def test_empty_cell_and_weights_term():
    truth = ggmoe_paper_setting(1)
    fitted = {key: value[[0, 1, 1]].copy() for key, value in truth.items()}
    fitted["weights"] = np.array([0.3, 0.35, 0.35])
    _, comp = voronoi_loss(fitted, truth, return_components=True)
    # Cell 2 is empty (contributes 0.3); cell 1 has 0.7 vs 0.4 (0.3).
    assert_allclose(comp["weights"], 0.6)
    assert list(voronoi_cells(fitted, truth)) == [0, 1, 1]


def test_cell_larger_than_rbar_table_raises():
    truth = ggmoe_paper_setting(1)
    deltas = [_delta(truth, 0.01 * (i + 1)) for i in range(4)]
    fitted = _split_atom(truth, 2, deltas, [0.25] * 4)
    with pytest.raises(ValueError, match="rbar"):
        voronoi_loss(fitted, truth)
    assert voronoi_loss(fitted, truth, rbar={1: 1, 2: 4, 3: 6, 4: 8}) > 0


def test_unfitted_estimator_and_dimension_mismatch():
    with pytest.raises(ValueError, match="not fitted"):
        voronoi_loss(GaussianGatedMoERegressor(), ggmoe_paper_setting(1))
    with pytest.raises(ValueError, match="dimensions"):
        voronoi_loss(ggmoe_paper_setting(1), ggmoe_paper_setting(3))
    with pytest.raises(ValueError, match="different feature or output dimensions"):
        voronoi_cells(ggmoe_paper_setting(1), ggmoe_paper_setting(3))


@pytest.mark.parametrize("function", [voronoi_cells, voronoi_loss])
def test_params_must_be_dicts_or_estimators(function):
    with pytest.raises(ValueError, match="estimator_or_params"):
        function([1.0], ggmoe_paper_setting(1))
    with pytest.raises(ValueError, match="true_params"):
        function(ggmoe_paper_setting(1), [1.0])


@pytest.mark.parametrize(
    "rbar, match",
    [
        ({1: 1, 3: 6}, "no exponent for it"),
        ({1: 1, 2: np.nan}, "rbar must map"),
        ({1: 1, 2: "4"}, "rbar must map"),
        ({1: 1, 2: -4}, "rbar must map"),
        ({0: 1, 2: 4}, "rbar must map"),
        ({True: 1, 2: 4}, "rbar must map"),
        ({np.True_: 1, 2: 4}, "rbar must map"),
        ({1: 1, 2: True}, "rbar must map"),
    ],
)
def test_invalid_rbar_raises(rbar, match):
    truth = ggmoe_paper_setting(1)
    fitted = _split_atom(truth, 2, [_delta(truth, 0.01), _delta(truth, 0.02)], [0.5, 0.5])
    with pytest.raises(ValueError, match=match):
        voronoi_loss(fitted, truth, rbar=rbar)


def _with_repeated_atom(truth, j, n_copies):
    """The same mixing measure with atom j split into n_copies identical atoms."""
    zero = {key: np.zeros_like(truth[key][j]) for key in PARTS}
    return _split_atom(truth, j, [zero] * n_copies, [1 / n_copies] * n_copies)


@pytest.mark.parametrize("n_copies", [2, 4])
@pytest.mark.parametrize("kind", ["D1", "D2"])
def test_zero_for_identical_measures_with_repeated_atoms(n_copies, kind):
    # G repeats atom 0 (4 copies: no rbar entry for a 4-atom cell, which must
    # not matter since the measure has 3 distinct atoms).
    G = _with_repeated_atom(ggmoe_paper_setting(2), 0, n_copies)
    assert voronoi_loss(G, G, kind) == 0.0
    loss, comp = voronoi_loss(G, G, kind, return_components=True)
    assert loss == 0.0 and comp["weights"] == 0.0
    assert list(comp["cell_sizes"]) == [1, 1, 1]
    # The same measure written without repetitions: identical losses.
    truth = ggmoe_paper_setting(2)
    fitted = _split_atom(truth, 1, [_delta(truth, 0.01), _delta(truth, 0.02)], [0.5, 0.5])
    assert voronoi_loss(fitted, G, kind) == pytest.approx(voronoi_loss(fitted, truth, kind), rel=1e-12)
    assert voronoi_loss(G, truth, kind) == 0.0


def test_distinct_atoms_are_not_merged():
    # Atoms differing in one parameter only stay separate (an over-fitted cell).
    truth = ggmoe_paper_setting(1)
    delta = {key: np.zeros_like(truth[key][2]) for key in PARTS}
    delta["intercept"] = np.array([1e-3])
    zero = {key: np.zeros_like(truth[key][2]) for key in PARTS}
    fitted = _split_atom(truth, 2, [zero, delta], [0.5, 0.5])
    _, comp = voronoi_loss(fitted, truth, return_components=True)
    assert list(comp["cell_sizes"]) == [1, 1, 2]
    assert_allclose(voronoi_loss(fitted, truth), 0.15 * 1e-3**4, rtol=1e-10)


# ---------------------------------------------------------------- merge_cell


@pytest.mark.parametrize("model", [1, 3])
def test_merge_cell_of_one_atom_is_the_atom(model):
    truth = ggmoe_paper_setting(model)
    merged = merge_cell(truth, [1])
    for key in PARTS:
        assert_allclose(merged[key][0], truth[key][1], atol=1e-14)
    assert_allclose(merged["weights"], truth["weights"][1])


def test_merge_cell_matches_the_moments_of_a_sample():
    # Independent route: draw from the cell's two-atom mixture and fit one
    # joint Gaussian by sample moments, then read off gate and expert.
    truth = ggmoe_paper_setting(3)
    cell = _split_atom(truth, 0, [_delta(truth, 0.05), _delta(truth, -0.03)], [0.3, 0.7])
    cell = {key: value[2:] for key, value in cell.items()}  # only the two atoms
    cell["weights"] = cell["weights"] / cell["weights"].sum()
    merged = merge_cell(cell)
    X, y = make_gaussian_gated_moe(400_000, params=cell, random_state=0)
    Z = np.column_stack([X, y])
    mean, cov = Z.mean(axis=0), np.cov(Z, rowvar=False, bias=True)
    coef = np.linalg.solve(cov[:2, :2], cov[:2, 2])
    assert_allclose(merged["means"][0], mean[:2], atol=1e-3)
    assert_allclose(merged["covariances"][0], cov[:2, :2], atol=1e-3)
    assert_allclose(merged["coef"][0, 0], coef, atol=2e-2)
    assert_allclose(merged["intercept"][0, 0], mean[2] - coef @ mean[:2], atol=1e-2)
    assert_allclose(
        merged["noise_covariances"][0, 0, 0], cov[2, 2] - cov[:2, 2] @ coef, atol=1e-3
    )


@pytest.mark.parametrize("atoms", [[], [3], [-1], [0.5], [[0, 1]]])
def test_merge_cell_rejects_bad_atom_indices(atoms):
    with pytest.raises(ValueError, match="atoms must be"):
        merge_cell(ggmoe_paper_setting(1), atoms)


# --------------------------------------------------- voronoi_parameter_errors


def _balanced_split(truth, j, h, fractions=(0.25, 0.75)):
    """Cell j split in two atoms whose first-order errors cancel.

    Atom errors are ``+h / w_1`` and ``-h / w_2`` times a unit direction in
    every parameter, so ``sum_i w_i Delta_i = 0``: each atom is off by O(h),
    the moment-matched merge only by O(h^2).
    """
    w1, w2 = fractions
    return _split_atom(truth, j, [_delta(truth, h * w2), _delta(truth, -h * w1)], fractions)


@pytest.mark.parametrize("model", [2, 3])
def test_merged_errors_are_second_order_in_a_balanced_split(model):
    truth = ggmoe_paper_setting(model)
    hs = np.array([1e-2, 3e-3, 1e-3])
    errors = [voronoi_parameter_errors(_balanced_split(truth, 1, h), truth) for h in hs]
    for key in PARTS:
        atoms = np.array([e[key + "_atoms"] for e in errors])
        merged = np.array([e[key + "_merged"] for e in errors])
        atom_order = np.polyfit(np.log(hs), np.log(atoms), 1)[0]
        assert_allclose(atom_order, 1.0, atol=1e-6)
        # Mean errors cancel exactly (merged = weighted mean); the other
        # groups pick up the O(h^2) spread of the atoms.
        if np.all(merged < 1e-14):
            continue
        merged_order = np.polyfit(np.log(hs), np.log(merged), 1)[0]
        assert merged_order > 1.9, (key, merged)
    for e in errors:
        assert e["n_overfit_cells"] == 1 and list(e["cell_sizes"]) == [1, 2, 1]
        assert e["means_exact"] == 0.0 and e["weights_merged"] < 1e-15
        assert_allclose(e["overfit_minor_share"], 0.25)


def test_unweighted_merge_would_be_first_order():
    # Guard on the test above: with unequal weights the *unweighted* average
    # of the atoms is off by O(h), so the merge must use the weights.
    truth = ggmoe_paper_setting(1)
    h = 1e-3
    split = _balanced_split(truth, 2, h)
    plain = split["means"][2:].mean(axis=0) - truth["means"][2]
    assert np.linalg.norm(plain) > 0.1 * h
    assert voronoi_parameter_errors(split, truth)["means_merged"] < 1e-15


def test_parameter_errors_of_singleton_cells_and_weights():
    truth = ggmoe_paper_setting(4)
    fitted = {key: value.copy() for key, value in truth.items()}
    for key, delta in _delta(truth, 1e-3).items():
        fitted[key][0] = fitted[key][0] + delta
    fitted["weights"] = np.array([0.32, 0.38, 0.3])
    errors = voronoi_parameter_errors(fitted, truth)
    # Singleton-cell errors are the mean over the three cells of the norms.
    assert_allclose(errors["means_exact"], np.sqrt(2) * 1e-3 / 3)
    assert_allclose(errors["covariances_exact"], np.sqrt(2) * 1e-3 / 3)
    assert_allclose(errors["coef_exact"], np.sqrt(2) * 1e-3 / 3)
    assert_allclose(errors["intercept_exact"], 1e-3 / 3)
    assert_allclose(errors["weights_exact"], 0.04 / 3)
    assert np.isnan(errors["means_atoms"]) and np.isnan(errors["weights_merged"])
    assert np.isnan(errors["overfit_minor_share"])
    assert errors["n_overfit_cells"] == 0 and errors["n_empty_cells"] == 0


def test_parameter_errors_ignore_a_nearly_empty_spurious_atom():
    # An atom of weight 1e-9 far from its cell barely moves the weighted
    # atom error or the merge (the unweighted mean would jump to ~0.05).
    truth = ggmoe_paper_setting(1)
    far = _delta(truth, 0.1)
    fitted = _split_atom(truth, 1, [_delta(truth, 0.0), far], [1 - 1e-8, 1e-8])
    errors = voronoi_parameter_errors(fitted, truth)
    assert errors["means_atoms"] < 1e-8
    assert errors["means_merged"] < 1e-8
    assert errors["n_empty_cells"] == 0
    # ... and the cell is flagged as collapsed onto one atom.
    assert_allclose(errors["overfit_minor_share"], 1e-8)


def test_parameter_errors_count_empty_cells():
    truth = ggmoe_paper_setting(1)
    fitted = {key: value[[0, 1, 1]].copy() for key, value in truth.items()}
    fitted["means"][2] += 0.01
    fitted["weights"] = np.array([0.3, 0.35, 0.35])
    errors = voronoi_parameter_errors(fitted, truth)
    assert errors["n_empty_cells"] == 1 and errors["n_overfit_cells"] == 1
    assert_allclose(errors["weights_merged"], 0.3)


def test_parameter_errors_validate_inputs():
    with pytest.raises(ValueError, match="not fitted"):
        voronoi_parameter_errors(GaussianGatedMoERegressor(), ggmoe_paper_setting(1))
    with pytest.raises(ValueError, match="different feature or output dimensions"):
        voronoi_parameter_errors(ggmoe_paper_setting(1), ggmoe_paper_setting(3))
    with pytest.raises(ValueError, match="true_params"):
        voronoi_parameter_errors(ggmoe_paper_setting(1), [1.0])
