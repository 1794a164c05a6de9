"""GAMP against state evolution across the second transition (issue 17).

Not a gallery example (no ``plot_`` prefix: it takes tens of CPU-minutes).
Runs Bayes-optimal GAMP on data of the two-layer tied-attention model
(``L = 2``, skip ``c = 1``) at ``d = 2000`` for several sample ratios and
seeds, to convergence, and the state evolution at the same ratios; writes one
JSON line per run to the output file, so that partial results survive::

    python examples/amp/gamp_vs_se_second_transition.py gamp out.jsonl
    python examples/amp/gamp_vs_se_second_transition.py se out_se.jsonl
    python examples/amp/gamp_vs_se_second_transition.py table out.jsonl out_se.jsonl

The table reported in ``doc/modules/amp.rst`` was produced this way.
"""

import json
import sys
import time
import warnings

import numpy as np

from skmoe.amp import DeepAttentionChannel, SequenceMultiIndexAMP, state_evolution
from skmoe.datasets import make_sequence_multi_index

ALPHAS = (0.8, 0.9, 1.0, 1.2)
SEEDS = (0, 1, 2)
D = 2000
MAX_ITER = 300
TOL = 1e-7
#: Quadrature nodes per axis of the channel posterior, for GAMP and SE alike.
N_GRID = 40


def cosine_squared(M, Q, W):
    """Per-layer ``M_kk^2 / (Q_kk |w*_k|^2 / d)``: the squared cosine of the estimate."""
    d = W.shape[0]
    return np.diag(M) ** 2 / (np.diag(Q) * np.diag(W.T @ W) / d)


def run_gamp(path, seeds=SEEDS, alphas=ALPHAS):
    channel = DeepAttentionChannel(n_layers=2, skip=1.0, n_grid=N_GRID)
    # Breadth first over alpha, so that partial results cover every alpha.
    for seed in seeds:
        for alpha in alphas:
            start = time.perf_counter()
            X, y, W = make_sequence_multi_index(int(alpha * D), D, channel,
                                                random_state=100 + seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                amp = SequenceMultiIndexAMP(channel, max_iter=MAX_ITER, tol=TOL, verbose=1,
                                            random_state=seed).fit(X, y, W_star=W)
            M, Q = amp.overlaps(W)
            cos2_history = [cosine_squared(m, q, W).tolist()
                            for m, q in zip(amp.history_["M"], amp.history_["Q"])]
            record = dict(alpha=alpha, seed=seed, d=D, n_iter=int(amp.n_iter_),
                          converged=bool(amp.converged_),
                          cos2=cosine_squared(M, Q, W).tolist(),
                          cos2_history=cos2_history[::5],
                          seconds=time.perf_counter() - start)
            with open(path, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(alpha, seed, record["n_iter"], record["converged"], record["cos2"],
                  f"{record['seconds']:.0f}s", flush=True)


def run_se(path):
    channel = DeepAttentionChannel(n_layers=2, skip=1.0, n_grid=N_GRID)
    for alpha in ALPHAS[::-1]:  # the hardest point, nearest the transition, last
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            se = state_evolution(channel, alpha, solver="anderson", target_std=0.005,
                                 n_samples=40_000, max_iter=300, tol=1e-5,
                                 compute_test_errors=False)
        record = dict(alpha=alpha, q=np.diag(se.q).tolist(), q_std=np.diag(se.q_std).tolist(),
                      n_iter=int(se.n_iter), converged=bool(se.converged),
                      seconds=time.perf_counter() - start)
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(record, flush=True)


def table(gamp_path, se_path):
    runs = {}
    for line in open(gamp_path):  # several processes may have run the same pair
        r = json.loads(line)
        runs[(r["alpha"], r["seed"])] = r
    runs = list(runs.values())
    se = {r["alpha"]: r for r in (json.loads(line) for line in open(se_path))}
    print("alpha  GAMP cos2 layer 1   GAMP cos2 layer 2   iterations   SE q11   SE q22")
    for alpha in ALPHAS:
        rows = [r for r in runs if r["alpha"] == alpha]
        if not rows:
            continue
        c = np.array([r["cos2"] for r in rows])
        err = c.std(axis=0, ddof=1) / np.sqrt(len(c)) if len(c) > 1 else np.full(2, np.nan)
        its = ",".join(str(r["n_iter"]) + ("" if r["converged"] else "*") for r in rows)
        s = se.get(alpha)
        se_txt = (f"{s['q'][0]:.4f}+-{s['q_std'][0]:.4f}  {s['q'][1]:.4f}+-{s['q_std'][1]:.4f}"
                  if s else "-")
        print(f"{alpha:4.1f}  {c[:, 0].mean():.4f}+-{err[0]:.4f}   {c[:, 1].mean():.4f}+-"
              f"{err[1]:.4f}   {its}   {se_txt}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "gamp":
        # Optional: the seeds and the alphas of this process, e.g. "2,1" "1.2,1.0".
        seeds = tuple(int(v) for v in sys.argv[3].split(",")) if len(sys.argv) > 3 else SEEDS
        alphas = (tuple(float(v) for v in sys.argv[4].split(",")) if len(sys.argv) > 4
                  else ALPHAS)
        run_gamp(sys.argv[2], seeds, alphas)
    elif mode == "se":
        run_se(sys.argv[2])
    else:
        table(sys.argv[2], sys.argv[3])
