"""SQUAREM: squared extrapolation of an EM map (Varadhan & Roland, 2008).

The accelerator knows nothing about the model: it sees an ``em_step``
callable, ``params -> (objective of params, EM update of params)``, and two
maps between parameters and unconstrained vectors, and it reports every
recorded objective to a :class:`~skmoe.utils._monitor.ConvergenceMonitor`.
"""

import numpy as np


def squarem(em_step, params, *, monitor, max_iter, to_vector, from_vector):
    """SQUAREM-accelerated EM (S3 step length, adaptive bound, monotone safeguard).

    Each cycle evaluates ``theta0``, ``theta1 = F(theta0)`` and an
    extrapolated ``theta'`` (followed by one EM step); ``theta'`` is kept only
    if ``L(theta') >= L(theta1)``, otherwise the cycle falls back to
    ``theta2 = F(theta1)``.  Convergence is declared, as for plain EM, when
    ``|L(theta1) - L(theta0)| < tol`` (the monitor's rule), and ``theta2`` is
    returned.

    Parameters
    ----------
    em_step : callable
        ``em_step(params) -> (objective, new_params)``: the objective (mean
        log-likelihood) of ``params`` and one EM update of them.  May raise
        ``ValueError`` for invalid (e.g. singular) parameters.
    params : object
        Starting parameters.
    monitor : ConvergenceMonitor
        Receives the objective of every point kept on the path, in order:
        ``L(theta0)`` and ``L(extrapolated)`` with ``change=NaN`` (no
        convergence test there), ``L(theta1)`` with the plain-EM change
        ``L(theta1) - L(theta0)``.  These are the recorded objectives, never
        decreasing.
    max_iter : int
        Budget of ``em_step`` calls, extrapolated ones included.
    to_vector : callable
        ``params -> ndarray``, unconstrained coordinates.
    from_vector : callable
        ``(vector, like) -> params`` shaped like ``like``; raises
        ``ValueError`` if the result is not a valid model.

    Returns
    -------
    params : object
        The last EM iterate.
    n_passes : int
        Calls of ``em_step``, extrapolated ones included.
    """
    if max_iter == 0:
        return params, 0
    step_max = 1.0
    n_passes = 0
    theta0, ll0, theta1 = params, None, None
    while True:
        if ll0 is None:
            ll0, theta1 = em_step(theta0)
            n_passes += 1
            monitor.report(ll0, change=np.nan)
            if n_passes >= max_iter:
                return theta1, n_passes
        ll1, theta2 = em_step(theta1)
        n_passes += 1
        monitor.report(ll1, change=ll1 - ll0)
        if monitor.converged or n_passes >= max_iter:
            return theta2, n_passes

        v0 = to_vector(theta0)
        v1 = to_vector(theta1)
        r = v1 - v0
        v = to_vector(theta2) - 2 * v1 + v0
        norm_v = np.linalg.norm(v)
        alpha = np.linalg.norm(r) / norm_v if norm_v > 0 else 1.0
        alpha = min(max(alpha, 1.0), step_max)
        if alpha == step_max:
            step_max *= 4.0
        accepted = False
        if alpha > 1.0:
            try:
                extrapolated = from_vector(v0 + 2 * alpha * r + alpha**2 * v, theta0)
                ll_x, theta_next = em_step(extrapolated)
                n_passes += 1
                accepted = bool(np.isfinite(ll_x) and ll_x >= ll1)
            except ValueError:  # singular extrapolated covariance
                pass
            if not accepted:
                step_max = max(1.0, step_max / 4.0)
        if accepted:
            monitor.report(ll_x, change=np.nan)
            theta0 = theta_next
        else:
            theta0 = theta2
        ll0 = None
        if n_passes >= max_iter:
            # No pass left to evaluate theta0: return the last EM iterate.
            return theta_next if accepted else theta2, n_passes
