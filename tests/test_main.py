"""The README's first command: ``python -m skmoe``."""

import numpy as np

from skmoe import GaussianGatedMoERegressor
from skmoe.__main__ import main
from skmoe.datasets import make_gaussian_gated_moe
from sklearn.model_selection import train_test_split


def test_main_prints_the_fitted_model(capsys):
    assert main(["--n-samples", "2000", "--n-components", "2", "--random-state", "3"]) == 0
    out = capsys.readouterr().out
    # The printed held-out R^2 is the one of the same fit done by hand.
    X, y = make_gaussian_gated_moe(2000, 2, n_components=2, random_state=3)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=3)
    model = GaussianGatedMoERegressor(2, n_init=3, random_state=3).fit(X_train, y_train)
    assert f"held-out R^2: {model.score(X_test, y_test):.4f}" in out
    assert "EM converged" in out
    # One "fit" and one "true" row per expert, the fitted weights as printed.
    assert out.count(" fit ") == 2 and out.count(" true ") == 2
    for weight in np.round(model.weights_, 3):
        assert f"{weight:6.3f}" in out
