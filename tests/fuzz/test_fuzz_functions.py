"""Fuzz the public functions: datasets, metrics, state evolution, experiments, utils.

The issue-15 defects (``make_latent_cluster_regression(separation >= 1e150)``,
``make_gaussian_gated_moe(noise >= 1e150)``, ``make_sequence_multi_index``
with a channel class, ``voronoi_loss`` with duplicated atoms) each have a
reproducer test below.
"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from _oracle import assert_finite_or_clear_error
from _strategies import bad_value
from skmoe.amp import AbsChannel, LinearChannel, SquareChannel, state_evolution, test_errors
from skmoe.datasets import (make_gaussian_gated_moe, make_latent_cluster_regression,
                            make_sequence_multi_index)
from skmoe.experiments import near_truth_start
from skmoe.metrics import voronoi_cells, voronoi_loss
from skmoe.utils import expert_n_parameters, mlp_width_for_n_parameters

# test_errors is a public function whose name pytest would collect as a test.
test_errors.__test__ = False

counts = st.one_of(st.integers(-2, 30), bad_value())
reals = st.one_of(st.sampled_from([0.0, 1e-300, 0.1, 1.0, 3.0, 1e50, -1.0]), bad_value())


@given(n=counts, d=counts, k=st.one_of(st.integers(1, 4), bad_value()),
       separation=reals, noise=reals, n_outputs=st.one_of(st.integers(1, 2), bad_value()))
def test_make_gaussian_gated_moe(n, d, k, separation, noise, n_outputs):
    assert_finite_or_clear_error(
        lambda: make_gaussian_gated_moe(n, d, n_components=k, n_outputs=n_outputs,
                                        separation=separation, noise=noise,
                                        return_labels=True, return_params=True, random_state=0),
        description=f"n={n!r} d={d!r} k={k!r} sep={separation!r} noise={noise!r}")


@given(n=counts, d=counts, k=st.one_of(st.integers(1, 3), bad_value()),
       exponent=st.one_of(st.integers(1, 4), bad_value()), separation=reals, noise=reals)
def test_make_latent_cluster_regression(n, d, k, exponent, separation, noise):
    assert_finite_or_clear_error(
        lambda: make_latent_cluster_regression(n, d, n_clusters=k, information_exponent=exponent,
                                               separation=separation, noise=noise,
                                               random_state=0, return_truth=True),
        description=f"n={n!r} d={d!r} k={k!r} exp={exponent!r} sep={separation!r}")


@given(n=counts, d=counts, channel=st.sampled_from([LinearChannel(), AbsChannel(),
                                                     SquareChannel(), "bogus", None]))
def test_make_sequence_multi_index(n, d, channel):
    assert_finite_or_clear_error(lambda: make_sequence_multi_index(n, d, channel, random_state=0),
                                 description=f"n={n!r} d={d!r} {channel!r}")


def _true_params(k=2, d=2, seed=0):
    _, _, params = make_gaussian_gated_moe(50, d, n_components=k, return_params=True,
                                           random_state=seed)
    return params


@given(k=st.integers(1, 4), seed=st.integers(0, 5), perturb=st.sampled_from([0.0, 1e-8, 0.5, 10.0]),
       kind=st.one_of(st.sampled_from(["D1", "D2"]), bad_value()))
def test_voronoi_loss_and_cells(k, seed, perturb, kind):
    true = _true_params(2, 2, 0)
    est = _true_params(k, 2, seed + 1)
    rng = np.random.RandomState(seed)
    for key, value in est.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            est[key] = value + perturb * rng.standard_normal(value.shape)
    assert_finite_or_clear_error(lambda: voronoi_loss(est, true, kind), description=f"{kind!r}")
    assert_finite_or_clear_error(lambda: voronoi_cells(est, true))


@given(alpha=st.one_of(st.sampled_from([0.0, 1e-3, 0.5, 2.0, 1e6, -1.0]), bad_value()),
       channel=st.sampled_from([LinearChannel(), AbsChannel(), SquareChannel()]),
       q_init=st.sampled_from([0.05, 0.0, 1.0, -1.0, np.nan]))
def test_state_evolution(alpha, channel, q_init):
    assert_finite_or_clear_error(
        lambda: state_evolution(channel, alpha, q_init=q_init, max_iter=3, n_samples=200,
                                n_inner=4),
        description=f"alpha={alpha!r} q_init={q_init!r}")


@given(q=st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, np.nan, np.inf]), bad_value()),
       channel=st.sampled_from([LinearChannel(), AbsChannel(), SquareChannel()]))
def test_test_errors(q, channel):
    assert_finite_or_clear_error(lambda: test_errors(channel, q, n_samples=200, n_inner=4),
                                 description=f"q={q!r}")


@given(n_features=counts, hidden=st.one_of(st.just((3,)), st.just(()), st.just((0,)),
                                           st.just((2, 2)), bad_value()),
       n_outputs=counts, prelu=st.one_of(st.booleans(), bad_value()))
def test_expert_n_parameters(n_features, hidden, n_outputs, prelu):
    assert_finite_or_clear_error(lambda: expert_n_parameters(n_features, hidden, n_outputs, prelu),
                                 description=f"{n_features!r} {hidden!r} {n_outputs!r} {prelu!r}")


@given(n_parameters=st.one_of(st.integers(-5, 10**6), bad_value()), n_features=counts,
       layers=st.one_of(st.integers(0, 3), bad_value()))
def test_mlp_width_for_n_parameters(n_parameters, n_features, layers):
    assert_finite_or_clear_error(
        lambda: mlp_width_for_n_parameters(n_parameters, n_features, n_hidden_layers=layers),
        description=f"{n_parameters!r} {n_features!r} {layers!r}")


@given(k=st.one_of(st.integers(1, 5), bad_value()), n=st.one_of(st.integers(1, 10**6), bad_value()))
def test_near_truth_start(k, n):
    true = _true_params(2, 2, 0)
    assert_finite_or_clear_error(lambda: near_truth_start(true, k, n, 0), true,
                                 description=f"k={k!r} n={n!r}")


# ------------------------------------------- issue-15 reproducers (fixed; regression tests)

def test_known_latent_cluster_huge_separation():
    assert_finite_or_clear_error(lambda: make_latent_cluster_regression(
        20, 4, separation=1e200, random_state=0, return_truth=True))


def test_known_ggmoe_dataset_huge_noise():
    assert_finite_or_clear_error(lambda: make_gaussian_gated_moe(20, 2, noise=1e200,
                                                                 random_state=0))


def test_known_sequence_multi_index_channel_class():
    assert_finite_or_clear_error(lambda: make_sequence_multi_index(10, 3, LinearChannel,
                                                                   random_state=0))


def test_known_voronoi_duplicated_atoms():
    true = _true_params(2, 2, 0)
    est = {key: (np.concatenate([value[:1], value[:1]]) if isinstance(value, np.ndarray)
                 and value.ndim and len(value) == 2 else value) for key, value in true.items()}
    for kind in ("D1", "D2"):
        result, exc = assert_finite_or_clear_error(lambda: voronoi_loss(est, true, kind))
        assert exc is not None or np.all(np.asarray(result) >= 0)
