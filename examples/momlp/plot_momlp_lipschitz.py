"""
===========================================================
Mixture of MLP experts: more experts, same cost per input
===========================================================

A :class:`~skmoe.MixtureOfMLPsRegressor` routes every input to exactly one
small (P)ReLU MLP, the expert of the cell that contains it.  Kratsios et al.
(TMLR 2025) show that such a mixture approximates any Lipschitz function on
:math:`[0, 1]^n` to a sup-norm error :math:`\\varepsilon` while each input
only touches :math:`O(\\varepsilon^{-1})` parameters; at a *fixed* expert
size, adding experts (smaller cells) lowers the error without raising the
cost per input.

This example

* measures the sup-norm error on a dense grid as the number of dyadic grid
  cells grows at a fixed expert size, next to single
  :class:`~sklearn.neural_network.MLPRegressor` networks of growing size,
  against the number of parameters used per input;
* compares the test error of a 16-expert mixture with one MLPRegressor having
  the same *total* number of parameters, on a smooth and on a piecewise
  target;
* checks that the grid's tree routing agrees with flat nearest-prototype
  routing.

See the :ref:`user guide <momlp>` for the model and its parameter counts.
"""

# %%
# A Lipschitz target on the unit square
# -------------------------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits

from skmoe import MixtureOfMLPsRegressor
from skmoe.utils import mlp_width_for_n_parameters

warnings.simplefilter("ignore", ConvergenceWarning)



def fit_mlp(mlp, X, y):
    """Fit a scikit-learn MLP baseline with one BLAS thread.

    Its matrix products are small (at most 64 x 64 weights on batches of 200
    rows): extra BLAS threads only spin and fight for the cores, which made
    this example about 6 times slower on a 2-core machine.  skmoe's experts
    are numba kernels and use no BLAS.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return mlp.fit(X, y)


def lipschitz(X):
    return np.sin(2 * np.pi * X[:, 0]) * np.cos(2 * np.pi * X[:, 1]) + np.abs(X[:, 0] - X[:, 1])


rng = np.random.RandomState(0)
X = rng.uniform(size=(8000, 2))
y = lipschitz(X)
g = np.linspace(0, 1, 201)
grid = np.array(np.meshgrid(g, g)).reshape(2, -1).T
y_grid = lipschitz(grid)

# %%
# Sup-norm error against the parameters used per input
# ----------------------------------------------------
# The mixtures use ``routing="grid"`` (dyadic cells of the unit square, the
# theory's construction) and experts with one hidden layer of 8 PReLU units.
# ``active_parameters_`` counts one expert plus the routing path (two
# prototype coordinates per level of the tree).  A single MLPRegressor uses
# all of its parameters for every input.
mixture_rows = []
for n_experts in (1, 4, 16, 64, 256):
    model = MixtureOfMLPsRegressor(
        n_experts,
        routing="grid",
        hidden_layer_sizes=(8,),
        learning_rate_init=1e-2,
        batch_size=32,
        max_iter=300,
        random_state=0,
    ).fit(X, y)
    sup = np.abs(model.predict(grid) - y_grid).max()
    mixture_rows.append((n_experts, model.active_parameters_, model.n_parameters_, sup))

mlp_rows = []
for width in (8, 16, 32, 64):
    mlp = fit_mlp(
        MLPRegressor(
            hidden_layer_sizes=(width, width), learning_rate_init=1e-2, max_iter=300,
            random_state=0,
        ),
        X,
        y,
    )
    n_params = sum(c.size for c in mlp.coefs_) + sum(b.size for b in mlp.intercepts_)
    mlp_rows.append((width, n_params, np.abs(mlp.predict(grid) - y_grid).max()))

print("experts  active  total  sup-error")
for n_experts, active, total, sup in mixture_rows:
    print(f"{n_experts:7d} {active:7d} {total:6d} {sup:10.3f}")
print("MLP width  parameters  sup-error")
for width, n_params, sup in mlp_rows:
    print(f"{width:9d} {n_params:11d} {sup:10.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
ax = axes[0]
ax.loglog([r[0] for r in mixture_rows], [r[3] for r in mixture_rows], "o-")
ax.set_xlabel("number of experts (8 hidden units each)")
ax.set_ylabel("sup-norm error on a 201 x 201 grid")
ax.set_title("Fixed expert size, finer cells")
ax = axes[1]
ax.loglog([r[1] for r in mixture_rows], [r[3] for r in mixture_rows], "o", label="MoMLP")
for n_experts, active, _, sup in mixture_rows:
    ax.annotate(f"L={n_experts}", (active, sup), textcoords="offset points", xytext=(5, 0))
ax.loglog([r[1] for r in mlp_rows], [r[2] for r in mlp_rows], "s-", label="MLPRegressor")
ax.set_xlabel("parameters used per input")
ax.set_ylabel("sup-norm error")
ax.set_title("Error against active parameters")
ax.legend()
fig.tight_layout()

# %%
# Same total number of parameters: smooth and piecewise targets
# -------------------------------------------------------------
# A 16-expert mixture with k-means routing and experts of two hidden layers
# of width 16, against one MLPRegressor with two hidden layers whose width
# gives the same total number of parameters (prototypes included).  Both use
# Adam with early stopping; the scores are on held-out data.


def smooth(X):
    return np.sin(3 * X[:, 0]) * np.cos(3 * X[:, 1]) + X[:, 0] ** 2


def piecewise(X):
    # Discontinuous across the diagonal and the line x1 = 0.6, with
    # different slopes in each piece.
    return np.where(X[:, 0] + X[:, 1] > 1.0, 1.0 + X[:, 0], -X[:, 1]) + (X[:, 0] > 0.6)


X_train, X_test = X[:6000], X[6000:]
for name, target in (("smooth", smooth), ("piecewise", piecewise)):
    y_train, y_test = target(X_train), target(X_test)
    mixture = MixtureOfMLPsRegressor(
        16,
        hidden_layer_sizes=(16, 16),
        learning_rate_init=1e-2,
        max_iter=300,
        early_stopping=True,
        random_state=0,
    ).fit(X_train, y_train)
    total = mixture.n_parameters_
    width = mlp_width_for_n_parameters(total, n_features=2, n_hidden_layers=2)
    mlp = fit_mlp(
        MLPRegressor(
            hidden_layer_sizes=(width, width),
            learning_rate_init=1e-2,
            max_iter=300,
            early_stopping=True,
            random_state=0,
        ),
        X_train,
        y_train,
    )
    rmse_mix = np.sqrt(np.mean((mixture.predict(X_test) - y_test) ** 2))
    rmse_mlp = np.sqrt(np.mean((mlp.predict(X_test) - y_test) ** 2))
    print(
        f"{name:9s}: MoMLP {total} parameters ({mixture.active_parameters_} per input), "
        f"test RMSE {rmse_mix:.4f}; MLPRegressor width {width}, test RMSE {rmse_mlp:.4f}"
    )

# %%
# Tree routing equals flat routing on the grid
# --------------------------------------------
# The grid router descends a binary tree (two distance evaluations per
# level); on a dyadic grid this always ends in the cell of the nearest
# prototype, which a flat Voronoi router (the prototypes passed as
# ``routing``) finds by comparing all of them.
tree_model = MixtureOfMLPsRegressor(64, routing="grid", hidden_layer_sizes=(4,), max_iter=1,
                                    random_state=0).fit(X, y)
flat_model = MixtureOfMLPsRegressor(routing=tree_model.prototypes_, hidden_layer_sizes=(4,),
                                    max_iter=1, random_state=0).fit(X, y)
print("tree == flat on the dense grid:",
      np.array_equal(tree_model.route(grid), flat_model.route(grid)))
plt.show()
