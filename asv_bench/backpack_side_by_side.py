"""DiagonalFisherEstimator against BackPACK, side by side on the same network and batch.

Run from the repository root (needs ``torch`` and ``backpack-for-pytorch``;
without them the script says so and exits 0)::

    python asv_bench/backpack_side_by_side.py [--repeat 5] [--activation relu]

The reference problem is that of ``asv_bench/benchmarks/fisher.py``: a
784-256-256-10 ``MLPClassifier`` (sigmoid or ReLU hidden layers, softmax
output) and a batch of 1024 rows.  Its parameters are copied into an
equivalent float64 ``torch.nn.Sequential``.  Before timing, the numbers are
checked to agree.  BackPACK reports sums over the batch with
``CrossEntropyLoss(reduction="sum")``, skmoe per-sample means, hence the
factor ``N``:

* ``DiagGGNExact`` = ``N * fisher_exact_``, to rounding;
* ``DiagHessian`` on skmoe's own drawn labels = ``N * estimates_["hessian"]``;
* ``SumGradSquared`` on the same labels = ``N * estimates_["score"]`` (the
  squared score of the drawn labels; BackPACK's ``DiagGGNMC`` draws its own
  labels, so it can only agree in distribution, which is checked too: its
  mean squared error against the exact diagonal, in units of skmoe's
  closed-form variance, is about 1 like skmoe's own).

Each estimator is then timed alone through skmoe's public ``fit`` against
its BackPACK match, and the full ``fit()`` (exact diagonal, both estimators,
all variances and bounds) against ``DiagGGNExact``.  Wall and CPU
(``time.process_time``, all threads) times are the best of ``--repeat``
interleaved runs; the ratios skmoe / BackPACK are printed.
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import torch
    from backpack import backpack, extend
    from backpack.extensions import DiagGGNExact, DiagGGNMC, DiagHessian, SumGradSquared
except ImportError as error:  # pragma: no cover - optional comparison
    print(f"skipped: BackPACK side by side needs torch and backpack-for-pytorch ({error}).")
    sys.exit(0)

from benchmarks.fisher import FISHER_BATCH, fisher_batch, fisher_network  # noqa: E402

from skmoe import DiagonalFisherEstimator  # noqa: E402
from skmoe.inspection import _fisher_numba as _k  # noqa: E402
from skmoe.inspection._fisher_statistics import _extract_network  # noqa: E402
from skmoe.utils._validation import draw_seed  # noqa: E402


def torch_copy(model):
    """The sklearn MLP as a float64 ``torch.nn.Sequential`` (weights transposed)."""
    activation = {"logistic": torch.nn.Sigmoid, "relu": torch.nn.ReLU,
                  "tanh": torch.nn.Tanh}[model.activation]
    layers = []
    for i, (W, b) in enumerate(zip(model.coefs_, model.intercepts_)):
        linear = torch.nn.Linear(*W.shape).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if i < len(model.coefs_) - 1:
            layers.append(activation())
    return extend(torch.nn.Sequential(*layers))


def skmoe_labels(model, X, random_state=0):
    """The labels that ``DiagonalFisherEstimator(random_state=0).fit(X)`` draws."""
    net = _extract_network(model)
    mean, _, _ = _k.output_moments(net.family, net.predict_natural(X), 1.0)
    n = len(X)
    one = np.ones(n, dtype=np.int64)
    R = _k.draw_residuals(_k.SAMPLER_CODES[net.family], mean, 1.0, np.arange(n), one, 1,
                          draw_seed(np.random.RandomState(random_state)),
                          np.arange(n + 1, dtype=np.int64))
    return np.argmax(R + mean, axis=1)


def backpack_diagonal(module, X, labels, extension, attribute):
    """One BackPACK pass; the per-parameter results in skmoe's layout."""
    loss_function = extend(torch.nn.CrossEntropyLoss(reduction="sum"))
    module.zero_grad()
    loss = loss_function(module(X), labels)
    with backpack(extension):
        loss.backward()
    linears = [m for m in module if isinstance(m, torch.nn.Linear)]
    weights = [getattr(m.weight, attribute).detach().numpy().T for m in linears]
    biases = [getattr(m.bias, attribute).detach().numpy() for m in linears]
    return weights + biases


def check_agreement(model, module, X):
    """Assert the identities of the module docstring; return the largest errors."""
    N = len(X)
    Xt = torch.from_numpy(X)
    labels = torch.from_numpy(skmoe_labels(model, X))
    fisher = DiagonalFisherEstimator(model, random_state=0).fit(X)
    report = {}

    def relative(ours, theirs):
        return max(np.abs(N * a - b).max() / max(np.abs(b).max(), 1e-300)
                   for a, b in zip(ours, theirs, strict=True))

    report["exact vs DiagGGNExact"] = relative(
        fisher.fisher_exact_, backpack_diagonal(module, Xt, labels, DiagGGNExact(),
                                                "diag_ggn_exact"))
    report["hessian vs DiagHessian (same labels)"] = relative(
        fisher.estimates_["hessian"], backpack_diagonal(module, Xt, labels, DiagHessian(),
                                                        "diag_h"))
    report["score vs SumGradSquared (same labels)"] = relative(
        fisher.estimates_["score"], backpack_diagonal(module, Xt, labels, SumGradSquared(),
                                                      "sum_grad_squared"))
    for name, error in report.items():
        assert error < 1e-8, (name, error)

    # DiagGGNMC draws its own labels: compare the mean squared error against
    # the exact diagonal, in units of the closed-form variance, with skmoe's.
    torch.manual_seed(0)
    mc = backpack_diagonal(module, Xt, labels, DiagGGNMC(mc_samples=1), "diag_ggn_mc")

    def normalised_mse(estimate, scale):
        num = den = 0.0
        for e, f, v in zip(estimate, fisher.fisher_exact_, fisher.variances_["score"]):
            big = v > 1e-8 * v.max()
            num += (((e / scale - f) ** 2)[big] / v[big]).sum()
            den += big.sum()
        return num / den

    report["DiagGGNMC normalised MSE"] = normalised_mse(mc, N)
    report["skmoe score normalised MSE"] = normalised_mse(fisher.estimates_["score"], 1.0)
    for name in ("DiagGGNMC normalised MSE", "skmoe score normalised MSE"):
        assert 0.5 < report[name] < 2.0, (name, report[name])
    return report


def best_times(operations, repeat):
    """Best wall and CPU seconds of each operation, interleaved ``repeat`` times."""
    best = {name: [np.inf, np.inf] for name in operations}
    for _ in range(repeat):
        for name, operation in operations.items():
            wall, cpu = time.perf_counter(), time.process_time()
            operation()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
    return best


def side_by_side(activation, repeat):
    model = fisher_network(activation)
    module = torch_copy(model)
    X = fisher_batch()
    Xt = torch.from_numpy(X)
    labels = torch.from_numpy(skmoe_labels(model, X))
    print(f"\n== {activation}: 784-256-256-10, batch {FISHER_BATCH}, "
          f"torch {torch.get_num_threads()} threads ==")
    for name, value in check_agreement(model, module, X).items():
        print(f"  check {name:40s} {value:.2e}")

    def fit(**params):
        estimator = DiagonalFisherEstimator(model, random_state=0, **params)
        return lambda: estimator.fit(X)

    def bp(extension, attribute):
        return lambda: backpack_diagonal(module, Xt, labels, extension, attribute)

    operations = {
        "skmoe score": fit(method="score", compute_variances=False),
        "DiagGGNMC": bp(DiagGGNMC(mc_samples=1), "diag_ggn_mc"),
        "skmoe hessian": fit(method="hessian", compute_variances=False),
        "DiagHessian": bp(DiagHessian(), "diag_h"),
        "skmoe exact": fit(method="exact", compute_variances=False),
        "DiagGGNExact": bp(DiagGGNExact(), "diag_ggn_exact"),
        "skmoe full fit": fit(),
    }
    for operation in operations.values():  # warm-up (JIT, allocations)
        operation()
    # BackPACK's sigmoid DiagHessian takes seconds: fewer repeats for it.
    slow = {"DiagHessian": operations.pop("DiagHessian")}
    times = best_times(operations, repeat)
    times.update(best_times(slow, 1 if activation != "relu" else repeat))
    for name, (wall, cpu) in times.items():
        print(f"  {name:16s} wall {1e3 * wall:9.1f} ms   cpu {1e3 * cpu:9.1f} ms")
    print("  ratios skmoe / BackPACK (wall, cpu):")
    for ours, theirs in (("skmoe score", "DiagGGNMC"), ("skmoe hessian", "DiagHessian"),
                         ("skmoe exact", "DiagGGNExact"), ("skmoe full fit", "DiagGGNExact")):
        wall = times[ours][0] / times[theirs][0]
        cpu = times[ours][1] / times[theirs][1]
        print(f"    {ours:16s} / {theirs:13s} {wall:6.2f} {cpu:6.2f}")


def main():
    # BackPACK's hooks fire on module outputs here (the inputs need no gradient).
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--activation", choices=["logistic", "relu"], action="append")
    args = parser.parse_args()
    for activation in args.activation or ["logistic", "relu"]:
        side_by_side(activation, args.repeat)


if __name__ == "__main__":
    main()
