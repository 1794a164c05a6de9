"""
====================================================================
Variance of the two diagonal Fisher estimators during MLP training
====================================================================

The diagonal of the Fisher information can be estimated without bias in two
ways, both with labels drawn from the model: the squared score
:math:`\\hat I_1` and the negative Hessian diagonal :math:`\\hat I_2`.  Soen &
Sun (NeurIPS 2024) show that their variances differ by layer and change during
training.  This example reproduces, on the small ``digits`` data set, the
spirit of their MNIST figure: a 4-layer sigmoid
:class:`~sklearn.neural_network.MLPClassifier` is trained epoch by epoch with
``partial_fit`` and, after every epoch,
:class:`~skmoe.DiagonalFisherEstimator` gives for each layer

* the exact Fisher information (the diagonal Gauss-Newton matrix),
* the standard deviation of :math:`\\hat I_1` and :math:`\\hat I_2` (closed
  form, one label per row), and
* the eigenvalue upper bounds on those standard deviations.

:math:`\\hat I_2` has zero variance in the last layer (the output is linear
in its weights), so its curve is absent there.
"""

# %%
# Train and measure
# -----------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from skmoe import DiagonalFisherEstimator

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
classes = np.unique(y)

mlp = MLPClassifier(
    hidden_layer_sizes=(32, 32, 32), activation="logistic", learning_rate_init=0.01,
    batch_size=64, random_state=0,
)
n_layers = 4
n_epochs = 15
# The Fisher information is evaluated on a fixed subset of 400 rows.
X_eval = X[np.random.RandomState(1).choice(len(X), 400, replace=False)]
keys = ("fisher", "std_score", "std_hessian", "upper_score", "upper_hessian")
history = {key: np.zeros((n_epochs, n_layers)) for key in keys}

rng = np.random.RandomState(0)
for epoch in range(n_epochs):
    order = rng.permutation(len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for start in range(0, len(X), 64):
            batch = order[start:start + 64]
            mlp.partial_fit(X[batch], y[batch], classes=classes)
    fisher = DiagonalFisherEstimator(mlp, random_state=epoch).fit(X_eval)
    for layer in range(n_layers):
        # average over the weights of the layer; the variances are those of
        # the estimate from one label per row, scaled to one row (times N)
        n = len(X_eval)
        history["fisher"][epoch, layer] = fisher.fisher_exact_[layer].mean()
        for k in ("score", "hessian"):
            var = fisher.variances_[k][layer] * n
            upper = fisher.variance_bounds_[k]["upper"][layer] * n
            history["std_" + k][epoch, layer] = np.sqrt(var).mean()
            history["upper_" + k][epoch, layer] = np.sqrt(upper).mean()
    print(f"epoch {epoch + 1:2d}: training accuracy {mlp.score(X, y):.3f}")

# %%
# Plot
# ----
# Top: per layer, the mean exact Fisher information, the mean standard
# deviation of each estimator and its upper bound.  Bottom: how loose the
# bounds are, :math:`\log(\text{upper bound}/\text{std})`.
epochs = np.arange(1, n_epochs + 1)
fig, axes = plt.subplots(2, n_layers, figsize=(14, 6), sharex=True)
for layer in range(n_layers):
    ax = axes[0, layer]
    ax.plot(epochs, history["fisher"][:, layer], "k-", label="Fisher (exact)")
    ax.plot(epochs, history["std_score"][:, layer], "C0-", label=r"std $\hat I_1$")
    ax.plot(epochs, history["upper_score"][:, layer], "C0--", label=r"bound $\hat I_1$")
    if layer < n_layers - 1:
        ax.plot(epochs, history["std_hessian"][:, layer], "C1-", label=r"std $\hat I_2$")
        ax.plot(epochs, history["upper_hessian"][:, layer], "C1--",
                label=r"bound $\hat I_2$")
    ax.set_yscale("log")
    ax.set_title(f"layer {layer + 1}")
    ax = axes[1, layer]
    ax.plot(epochs, np.log(history["upper_score"][:, layer]
                           / history["std_score"][:, layer]), "C0-")
    if layer < n_layers - 1:
        ax.plot(epochs, np.log(history["upper_hessian"][:, layer]
                               / history["std_hessian"][:, layer]), "C1-")
    ax.set_xlabel("epoch")
axes[0, 0].legend(fontsize=8)
axes[1, 0].set_ylabel("log(bound / std)")
fig.tight_layout()

plt.show()

# %%
# Which estimator to use
# ----------------------
# ``recommended_`` gives, per parameter, the estimator with the lower
# variance.  The fraction of hidden weights for which the squared score wins:
for layer in range(n_layers - 1):
    share = np.mean(fisher.recommended_[layer] == "score")
    print(f"layer {layer + 1}: score estimator preferred for {share:.0%} of the weights")
