"""``python -m skmoe``: fit a Gaussian-gated MoE on a built-in dataset.

Generates data from a known Gaussian-gated mixture of experts
(:func:`skmoe.datasets.make_gaussian_gated_moe`), fits
:class:`skmoe.GaussianGatedMoERegressor` on a training split and prints a
summary: convergence, fitted parameters next to the true ones, held-out R^2
against a single linear model, and BIC.
"""

import argparse
import sys
from time import perf_counter

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

from . import GaussianGatedMoERegressor, __version__
from .datasets import make_gaussian_gated_moe


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m skmoe",
        description="Fit a Gaussian-gated mixture of experts on synthetic data "
        "with known parameters and print a summary.",
    )
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--n-features", type=int, default=2)
    parser.add_argument("--n-components", type=int, default=3)
    parser.add_argument("--random-state", type=int, default=0)
    return parser.parse_args(argv)


def _vec(values):
    return "[" + " ".join(f"{v:+.3f}" for v in np.ravel(values)) + "]"


def format_summary(model, truth, order):
    """Table of fitted parameters, each row next to its matched true expert.

    Parameters
    ----------
    model : GaussianGatedMoERegressor
        Fitted model.
    truth : dict
        True parameters, as returned by ``make_gaussian_gated_moe``.
    order : ndarray of shape (n_components,)
        ``order[j]`` is the fitted component matched to true component ``j``.

    Returns
    -------
    text : str
    """
    lines = [
        f"{'expert':>6}  {'':5}  {'weight':>6}  {'gate mean':<18}  "
        f"{'coef':<18}  {'intercept':>9}  {'noise sd':>8}"
    ]
    for j, k in enumerate(order):
        for label, params, idx in (("fit", None, k), ("true", truth, j)):
            get = (lambda key: getattr(model, key + "_")[idx]) if params is None else (
                lambda key: truth[key][idx]
            )
            lines.append(
                f"{j + 1 if label == 'fit' else '':>6}  {label:5}  {get('weights'):6.3f}  "
                f"{_vec(get('means')):<18}  {_vec(get('coef')):<18}  "
                f"{get('intercept')[0]:+9.3f}  {np.sqrt(get('noise_covariances')[0, 0]):8.4f}"
            )
    return "\n".join(lines)


def main(argv=None):
    """Run the default job and print its summary; returns the exit status."""
    args = _parse_args(argv)
    X, y, truth = make_gaussian_gated_moe(
        args.n_samples,
        args.n_features,
        n_components=args.n_components,
        return_params=True,
        random_state=args.random_state,
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=args.random_state
    )
    model = GaussianGatedMoERegressor(
        args.n_components, n_init=3, random_state=args.random_state
    )
    start = perf_counter()
    model.fit(X_train, y_train)
    elapsed = perf_counter() - start
    cost = np.linalg.norm(truth["means"][:, None, :] - model.means_[None], axis=-1)
    _, order = linear_sum_assignment(cost)
    linear_r2 = LinearRegression().fit(X_train, y_train).score(X_test, y_test)

    print(f"skmoe {__version__}: GaussianGatedMoERegressor on a built-in dataset")
    print(
        f"data: make_gaussian_gated_moe(n_samples={args.n_samples}, "
        f"n_features={args.n_features}, n_components={args.n_components}, "
        f"random_state={args.random_state}); {len(y_train)} train / {len(y_test)} test rows"
    )
    status = "converged" if model.converged_ else "did NOT converge"
    print(
        f"fit: EM {status} after {model.n_iter_} iterations (best of {model.n_init} "
        f"inits) in {elapsed:.2f} s; joint log-likelihood per sample "
        f"{model.lower_bound_:.4f}"
    )
    print()
    print(format_summary(model, truth, order))
    print()
    print(
        f"held-out R^2: {model.score(X_test, y_test):.4f} "
        f"(single linear regression: {linear_r2:.4f})"
    )
    print(f"held-out mean log p(y|x): {model.score_samples(X_test, y_test).mean():.4f}")
    print(f"BIC (train): {model.bic(X_train, y_train):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
