"""
=========================================================
Large data: sample weights, streaming and a Dask cluster
=========================================================

:class:`~skmoe.GaussianGatedMoERegressor` reduces the data to a few small
sufficient statistics per EM iteration.  This example shows the three ways
of using that for data that is large, arrives in batches, or lives on a
cluster (see :ref:`large_data`):

* ``sample_weight``: an integer weight is the same as a repeated row;
* ``partial_fit``: stepwise EM over a stream of batches, compared with the
  batch fit on held-out data;
* a fit on a :mod:`dask.array` on a ``distributed.LocalCluster``, equal to
  the NumPy fit, with lazy predictions.
"""

# %%
# Data from a known three-expert model
# ------------------------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np

from skmoe import GaussianGatedMoERegressor
from skmoe.datasets import make_gaussian_gated_moe

_, _, truth = make_gaussian_gated_moe(
    10, 2, n_components=3, return_params=True, random_state=0
)
X, y = make_gaussian_gated_moe(100_000, params=truth, random_state=1)
X_test, y_test = make_gaussian_gated_moe(20_000, params=truth, random_state=2)
start = {key: np.array(value) for key, value in truth.items()}

# %%
# Sample weights are frequency weights
# ------------------------------------
# From the same starting parameters, weighting the first 2,000 rows by small
# integers gives the fit on the rows repeated that many times.
weight = np.random.RandomState(0).randint(0, 4, size=2000)
fit_weighted = GaussianGatedMoERegressor(3, init_params=start).fit(
    X[:2000], y[:2000], sample_weight=weight
)
fit_repeated = GaussianGatedMoERegressor(3, init_params=start).fit(
    np.repeat(X[:2000], weight, axis=0), np.repeat(y[:2000], weight)
)
print(
    "largest difference of the means, weighted vs repeated rows:",
    np.abs(fit_weighted.means_ - fit_repeated.means_).max(),
)

# %%
# Streaming with ``partial_fit``
# ------------------------------
# Fifty batches of 2,000 rows, one stepwise-EM update each (step sizes
# ``(t + learning_offset) ** -learning_decay``).  The held-out mean
# log-likelihood approaches that of the batch fit on all 100,000 rows.
batch_fit = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
reference = batch_fit.joint_log_likelihood(X_test, y_test)

online = GaussianGatedMoERegressor(3, n_init=3, random_state=0)
held_out = []
for rows in np.array_split(np.arange(len(X)), 50):
    online.partial_fit(X[rows], y[rows])
    held_out.append(online.joint_log_likelihood(X_test, y_test))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(np.arange(1, 51), np.abs(reference - np.array(held_out)), marker=".")
ax.set_yscale("log")
ax.set_xlabel("batches seen (n_batch_iter_)")
ax.set_ylabel("|held-out gap to the batch fit|\n(nats per sample)")
ax.set_title("Stepwise EM with partial_fit")
fig.tight_layout()
print(f"gap after 50 batches: {reference - held_out[-1]:.2e} nats per sample")

# %%
# A Dask array on a local cluster
# -------------------------------
# The same data as a Dask array in chunks of 25,000 rows.  Each EM iteration
# runs the numba pass on every chunk (on the workers), adds the statistics
# along a fixed tree, and runs the M-step here, on the client.  The
# initialisation uses a random sample of at most ``init_sample_size`` rows.
# (The cluster uses threads so that the example runs anywhere; with
# ``processes=True`` or a remote cluster nothing changes.)
import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

X_dask = da.from_array(X, chunks=(25_000, -1))
y_dask = da.from_array(y, chunks=25_000)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # cluster start-up notes
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
with cluster, Client(cluster):
    on_dask = GaussianGatedMoERegressor(3, init_params=start, max_iter=20).fit(X_dask, y_dask)
    lazy = on_dask.predict(X_dask)
    print("predict returns", type(lazy).__name__, "with chunks", lazy.chunks[0][:2], "...")
    y_hat = lazy[:5].compute()

on_numpy = GaussianGatedMoERegressor(3, init_params=start, max_iter=20).fit(X, y)
print("fitted attributes are NumPy:", type(on_dask.means_).__name__)
print(
    "largest difference Dask vs NumPy fit (coef_):",
    np.abs(on_dask.coef_ - on_numpy.coef_).max(),
)
print("first predictions:", np.round(y_hat, 3))
plt.show()
