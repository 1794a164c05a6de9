"""Tests of the fast state evolution: solvers, adaptive Monte Carlo, curves, staircase."""

import numpy as np
import pytest

from skmoe.amp import (
    AbsChannel,
    DeepAttentionChannel,
    LinearChannel,
    SequenceMultiIndexAMP,
    SquareChannel,
    staircase_thresholds,
    state_evolution,
    state_evolution_curve,
    weak_recovery_threshold,
)
from skmoe.datasets import make_sequence_multi_index


def _linear_fixed_point(alpha, s2):
    """Closed-form SE of the linear channel (L = p = 1): q = q_hat / (1 + q_hat)."""
    q = 0.5
    for _ in range(10_000):
        qh = alpha / (s2 + 1 - q)
        q = qh / (1 + qh)
    return q


@pytest.mark.parametrize("alpha", [0.5, 3.0])
def test_anderson_reaches_the_closed_form_in_fewer_iterations(alpha):
    ch = LinearChannel(noise_std=0.5)
    common = dict(n_samples=20_000, tol=1e-7, max_iter=500, compute_test_errors=False)
    damped = state_evolution(ch, alpha, solver="damped", **common)
    anderson = state_evolution(ch, alpha, solver="anderson", **common)
    # Same draws, same map: the same fixed point, to the tolerance.
    np.testing.assert_allclose(anderson.q, damped.q, atol=1e-5)
    assert anderson.converged and anderson.n_iter < damped.n_iter / 2
    # And the closed form, within the reported Monte Carlo error.
    exact = _linear_fixed_point(alpha, 0.25)
    assert abs(anderson.q[0, 0] - exact) < 4 * anderson.q_std[0, 0] + 1e-4
    assert 0 < anderson.jacobian_radius < 1


def test_q_std_is_the_spread_over_seeds():
    # The reported standard error must match the seed-to-seed spread of q:
    # a q_std without the (I - J)^{-1} amplification would be too small.
    ch = AbsChannel()
    runs = [state_evolution(ch, 0.8, n_samples=1500, solver="anderson", tol=1e-7,
                            max_iter=300, compute_test_errors=False, random_state=seed)
            for seed in range(24)]
    q = np.array([r.q[0, 0] for r in runs])
    reported = np.mean([r.q_std[0, 0] for r in runs])
    ratio = q.std(ddof=1) / reported
    assert 0.5 < ratio < 1.8, (q.std(ddof=1), reported)
    # Near the threshold (0.5) the amplification 1 / (1 - J) is large.
    assert reported > 2 * np.mean([r.q_std[0, 0] for r in
                                   [state_evolution(ch, 3.0, n_samples=1500, solver="anderson",
                                                    compute_test_errors=False)]])


def test_anderson_leaves_the_unstable_zero_fixed_point():
    # Above the phase-retrieval threshold 1/2, q = 0 is an unstable fixed
    # point: the solver must return the informative one, as damped steps do.
    ch = AbsChannel()
    for alpha in (0.7, 1.0):
        damped = state_evolution(ch, alpha, n_samples=5000, max_iter=400, tol=1e-7,
                                 compute_test_errors=False)
        fast = state_evolution(ch, alpha, n_samples=5000, solver="anderson", tol=1e-7,
                               max_iter=400, compute_test_errors=False)
        assert damped.q[0, 0] > 0.05
        assert abs(fast.q[0, 0] - damped.q[0, 0]) < 1e-4
        assert fast.jacobian_radius < 1
    # Below it, q = 0 is stable and both stay there.
    below = state_evolution(ch, 0.4, n_samples=5000, solver="anderson", max_iter=400,
                            compute_test_errors=False)
    assert below.q[0, 0] < 0.01 and below.jacobian_radius < 1


def test_adaptive_monte_carlo_meets_the_target():
    ch = AbsChannel()
    ref = state_evolution(ch, 1.0, n_samples=100_000, solver="anderson", tol=1e-7,
                          compute_test_errors=False)
    used = {}
    for target in (0.03, 0.015):
        res = state_evolution(ch, 1.0, n_samples=100_000, solver="anderson", tol=1e-6,
                              target_std=target, min_samples=500, compute_test_errors=False)
        assert res.q_std[0, 0] <= target
        assert res.n_samples < 100_000
        assert abs(res.q[0, 0] - ref.q[0, 0]) < 4 * (target + ref.q_std[0, 0])
        used[target] = res.n_samples
    # Halving the target needs about four times the samples (error ~ n^-1/2).
    assert used[0.015] > 2.5 * used[0.03]


def test_adaptive_monte_carlo_stops_at_n_samples():
    res = state_evolution(AbsChannel(), 0.55, n_samples=2000, solver="anderson",
                          target_std=1e-6, compute_test_errors=False)
    assert res.n_samples == 2000 and res.q_std[0, 0] > 1e-6


def test_curve_matches_cold_points_and_saves_iterations():
    ch = AbsChannel()
    alphas = [0.3, 0.6, 0.8, 1.0, 1.5]
    common = dict(n_samples=4000, tol=1e-6, compute_test_errors=False, target_std=None)
    curve = state_evolution_curve(ch, alphas, **common)
    cold = state_evolution_curve(ch, alphas, warm_start=False, **common)
    # Common random numbers: warm and cold starts converge to the same fixed
    # points of the same maps.
    np.testing.assert_allclose(curve.q, cold.q, atol=1e-4)
    assert curve.n_iter.sum() < cold.n_iter.sum()
    for alpha, q in zip(alphas, curve.q):
        single = state_evolution(ch, alpha, solver="anderson", **common)
        np.testing.assert_allclose(q, single.q, atol=1e-4)
    # Monotone in alpha (more data, more overlap) and zero below 1/2.
    assert curve.q[0, 0, 0] < 0.01 and np.all(np.diff(curve.q[:, 0, 0]) > 0)


@pytest.mark.parametrize("alphas", [[1.0, 0.5], [0.5, 0.5], [], [-1.0, 1.0], [[0.5, 1.0]]])
def test_curve_rejects_bad_alphas(alphas):
    with pytest.raises(ValueError, match="strictly increasing positive"):
        state_evolution_curve(AbsChannel(), alphas, n_samples=100)


def test_curve_rejects_alpha_and_q_init_in_params():
    with pytest.raises(TypeError, match="sets q_init and alpha"):
        state_evolution_curve(AbsChannel(), [0.5], alpha=1.0)


def test_staircase_of_separable_channels_is_one_block():
    # Phase retrieval in two independent directions: both become unstable at
    # q = 0 at 1/2, together (one block), although the top eigenvector of the
    # degenerate operator picks an arbitrary one of them.
    res = staircase_thresholds(AbsChannel(n_directions=2))
    assert [list(b) for b in res.order] == [[0, 1]]
    assert abs(res.thresholds[0] - 0.5) < 1e-6


def test_staircase_rejects_se_params_it_sets():
    with pytest.raises(ValueError, match="cannot set 'directions'"):
        staircase_thresholds(SquareChannel(), se_params={"directions": [0]})


def test_staircase_of_two_layer_attention():
    # Consistent with the per-layer threshold tests (test_amp.py): the layer
    # nearest the output (index 1) first, at its q = 0 threshold (0.17-0.21,
    # above the Jensen bound 1/6); then layer 0 through the staircase, far
    # below its own q = 0 threshold (about 6.5).
    ch = DeepAttentionChannel(n_grid=24)
    res = staircase_thresholds(ch, n_samples=3000, xtol=1e-2,
                               se_params={"target_std": 0.02, "n_samples": 4000})
    assert res.order == [[1], [0]]
    first, second = res.thresholds
    layer2 = weak_recovery_threshold(ch, directions=[1], n_samples=3000)
    assert abs(first - layer2.threshold) < 1e-12  # the same operator and draws
    assert 1 / 6 < first < 0.21
    assert 0.55 < second < 0.9 and np.all(res.thresholds_std < 0.05)
    # The root: alpha lambda_max F_perp(q_1*(alpha)) crosses 1 there.
    q = res.learned_overlaps[1]
    assert q[1, 1] > 0.9 and q[0, 0] == 0
    for alpha, sign in ((second - 0.12, -1), (second + 0.12, 1)):
        se = state_evolution(ch, alpha, directions=[1], solver="anderson", target_std=0.02,
                             n_samples=4000, compute_test_errors=False, random_state=1)
        stab = weak_recovery_threshold(ch, directions=[0], learned_overlap=se.q,
                                       method="mc", n_samples=3000, random_state=1)
        assert sign * (alpha * stab.eigenvalue - 1) > 0


def test_gamp_matches_state_evolution_for_attention_between_the_transitions():
    # alpha = 0.45 lies between the two thresholds (about 0.19 and 0.71): the
    # last layer is partly learned, the first not at all.  GAMP's squared
    # cosines at d = 600 must match the SE overlaps within the Monte Carlo
    # error of SE, the seed-to-seed spread and an O(d^-1/2) finite-size term.
    ch = DeepAttentionChannel(n_grid=24)
    alpha, d = 0.45, 600
    se = state_evolution(ch, alpha, solver="anderson", target_std=0.02,
                         compute_test_errors=False)
    assert se.q_std[1, 1] <= 0.02
    cos2 = []
    for seed in (1, 2):
        X, y, W = make_sequence_multi_index(int(alpha * d), d, ch, random_state=seed)
        amp = SequenceMultiIndexAMP(ch, random_state=seed, max_iter=80).fit(X, y, W)
        assert amp.converged_
        M, Q = amp.overlaps(W)
        cos2.append(np.diag(M) ** 2 / (np.diag(Q) * np.diag(W.T @ W) / d))
    cos2 = np.array(cos2)
    sem = cos2[:, 1].std(ddof=1) / np.sqrt(len(cos2))
    assert abs(cos2[:, 1].mean() - se.q[1, 1]) < 3 * np.hypot(se.q_std[1, 1], sem) + 0.02
    assert se.q[0, 0] < 1e-6 and np.all(cos2[:, 0] < 0.05)


def test_nishimori_mix_has_the_smallest_variance_of_its_family():
    from skmoe.amp._state_evolution import _nishimori_combination

    rng = np.random.default_rng(0)
    n = 5000
    common = rng.standard_normal(n)
    # Two unbiased estimators of mean 1 per column, correlated in three ways;
    # the last column has identical forms (no control variate).
    score = 1 + np.column_stack([common + rng.standard_normal(n), 3 * common,
                                 rng.standard_normal(n), common])
    curvature = 1 + np.column_stack([common, common + 0.1 * rng.standard_normal(n),
                                     2 * rng.standard_normal(n), common])
    mixed = _nishimori_combination(score, curvature)
    for j in range(score.shape[1]):
        family = [np.var(curvature[:, j] + w * (score[:, j] - curvature[:, j]))
                  for w in np.linspace(-1, 2, 61)]
        assert np.var(mixed[:, j]) <= min(family) + 1e-12
        assert abs(mixed[:, j].mean() - 1) < 4 * mixed[:, j].std() / np.sqrt(n)
    np.testing.assert_array_equal(mixed[:, 3], score[:, 3])


def test_linear_channel_map_has_no_monte_carlo_error():
    # The linear channel's posterior covariance does not depend on y, so the
    # curvature form of q_hat is exact for every sample: the mixed map is the
    # closed form at any sample size (the score form alone has q_std ~ 1e-2
    # at 300 samples).
    ch = LinearChannel(noise_std=0.5)
    res = state_evolution(ch, 1.5, n_samples=300, tol=1e-12, max_iter=500,
                          compute_test_errors=False)
    assert abs(res.q[0, 0] - _linear_fixed_point(1.5, 0.25)) < 1e-9
    assert res.q_std[0, 0] < 1e-9


class _BistableMap:
    """A 1-D map with stable fixed points 0.3 and 0.9 and an unstable one at 0.5."""

    p = 1

    def __call__(self, x, n):
        r = -2.0 * (x - 0.3) * (x - 0.5) * (x - 0.9)
        return x + r, np.zeros((1, 1)), None, None

    def clip(self, x):
        return np.clip(x, 0.0, 1.0 - 1e-6)

    def to_matrix(self, x):
        return np.reshape(x, (1, 1))


def test_skipped_fixed_point_is_detected_on_the_segment():
    from skmoe.amp._state_evolution import _skips_a_fixed_point

    F = _BistableMap()
    # From below 0.3, the end point 0.9 lies past the stable 0.3 (and 0.5).
    assert _skips_a_fixed_point(F, np.array([0.05]), np.array([0.9]), 1)
    # Inside the basin of the end point, or ending at the nearest fixed point: nothing skipped.
    assert not _skips_a_fixed_point(F, np.array([0.6]), np.array([0.9]), 1)
    assert not _skips_a_fixed_point(F, np.array([0.05]), np.array([0.3]), 1)


def test_anderson_returns_the_damped_fixed_point_when_an_extrapolation_jumps(monkeypatch):
    # Near a discontinuous transition an extrapolated step can land in the
    # basin of another stable fixed point (measured on two-layer attention
    # at alpha = 0.94).  Force such a jump: the first extrapolation goes to
    # 0.95, inside the upper basin.  The stage must still return the fixed
    # point of the damped iteration from the same start.
    import skmoe.amp._state_evolution as module
    from skmoe.utils._monitor import ConvergenceMonitor

    honest = module._anderson_proposal

    forced = []

    def jump_once(xs, fs, beta):
        return forced.pop() if forced else honest(xs, fs, beta)

    def solve(solver):
        monitor = ConvergenceMonitor(tol=1e-10, max_iter=5000, label="se")
        x, _, converged, _ = module._solve_stage(
            _BistableMap(), np.array([0.05]), 1, solver=solver, damping=0.8, tol=1e-10,
            monitor=monitor, trajectory=[])
        assert converged
        return float(x[0])

    monkeypatch.setattr(module, "_anderson_proposal", jump_once)
    # Without the check, the forced jump stays on the upper branch ...
    forced.append(np.array([0.95]))
    with monkeypatch.context() as m:
        m.setattr(module, "_skips_a_fixed_point", lambda *args: False)
        assert abs(solve("anderson") - 0.9) < 1e-6
    # ... with it, the stage comes back to the damped iteration's fixed point.
    forced.append(np.array([0.95]))
    fast = solve("anderson")
    damped = solve("damped")
    assert abs(damped - 0.3) < 1e-8
    assert abs(fast - damped) < 1e-8
    assert not forced  # the forced jump was taken (and undone)
