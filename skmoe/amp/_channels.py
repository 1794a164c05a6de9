"""Output channels of sequence multi-index models.

A channel describes ``P_out(y | Z)`` for ``Z`` of shape ``(n_tokens,
n_directions)`` and provides the one computation GAMP and state evolution
need: the posterior moments of ``Z`` under

.. math::

    P(Z \\mid y, \\Omega, V) \\propto P_{\\rm out}(y \\mid Z)
    \\prod_{l=1}^{L} \\mathcal N(z_l; \\omega_l, V),

where ``z_l`` (a row of ``Z``) is the ``l``-th token and ``V`` is a ``p x p``
covariance shared by every token and every sample.  All channels implement

* ``sample(Z, random_state)``: draw ``y`` given ``Z`` of shape (n, L, p);
* ``output(Z)``: the noiseless output ``g(Z)`` (the conditional mean of ``y``),
  used for test errors;
* ``posterior(y, omega, V)``: ``(mean, cov, log_partition)``, with ``mean`` of
  shape (n, L, p), the full posterior covariance ``cov`` of shape
  (n, L, p, L, p) and ``log Z_out`` of shape (n,) up to an additive function
  of ``y`` alone (which cancels from every comparison made at fixed ``y``
  distribution);
* ``check_y(y, n_samples)``: validate targets, raising ``ValueError``.

Posterior covariances are analytic (discrete sign posteriors, von
Mises-Fisher moments, Gaussian conjugacy) or computed from the same
log-sum-exp-weighted quadrature nodes as the mean; no finite differences are
used anywhere.

``output``, ``sample`` and ``posterior`` accept arrays of any array-API
library under ``sklearn.set_config(array_api_dispatch=True)`` and return
results in the namespace, on the device and in the dtype of ``Z`` (``omega``
for the posterior).  The closed-form channels compute there; the two
numerical ones (:class:`DeepAttentionChannel`'s numba quadrature and
:class:`GenericChannel`'s user function) compute on the host and move the
results back.  ``V`` is a small host matrix in every case.
"""

import functools
import inspect
import itertools
import math
import re
from abc import ABC, abstractmethod
from numbers import Integral

import numpy as np
from scipy import special
from sklearn.utils import check_random_state

from ..utils._array_api import (
    array_api_namespace,
    device,
    move_like,
    namespace_or_numpy,
    standard_normal_like,
    to_numpy,
)
from ..utils._threading import run_blocks
from ..utils._validation import check_int, check_real
from . import _attention_numba as _attention_kernels

__all__ = [
    "AbsChannel",
    "SquareChannel",
    "OuterProductChannel",
    "SumSquareChannel",
    "LinearChannel",
    "DeepAttentionChannel",
    "GenericChannel",
]


def _on_host(reference):
    """Run a NumPy-only channel method on the host for array-API inputs.

    The argument named ``reference`` (``Z`` or ``omega``) fixes the
    namespace, device and dtype the results are moved back to.  NumPy inputs
    pass straight through.
    """

    def decorate(method):
        signature = inspect.signature(method)

        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            arguments = signature.bind(self, *args, **kwargs).arguments
            like = arguments[reference]
            if array_api_namespace(like) is None:
                return method(self, *args, **kwargs)
            host = {name: value if name == "self" else to_numpy(value, dtype=np.float64)
                    for name, value in arguments.items()}
            result = method(**host)
            if isinstance(result, tuple):
                return tuple(move_like(r, like) for r in result)
            return move_like(result, like)

        return wrapper

    return decorate


def _positive_part(x):
    """``max(x, 0)`` element-wise, in ``x``'s namespace."""
    xp = namespace_or_numpy(x)
    # where, not clip: array_api_compat's CuPy clip synchronises with the host.
    return xp.where(x > 0, x, xp.zeros_like(x))


def _block_diagonal_tokens(block, n_tokens):
    """Cross-token covariance ``(n, L, p, L, p)`` from per-token blocks ``(n, L, p, p)``.

    Tokens are independent given ``(y, omega)`` for the factorised channels,
    so off-diagonal token blocks vanish.
    """
    eye = move_like(np.eye(n_tokens), block)
    return block[:, :, :, None, :] * eye[None, :, None, :, None]


#: The channel methods documented once, on :class:`BaseChannel`.
_DOCUMENTED_METHODS = ("sample", "output", "posterior", "check_y", "check_posterior_support")
#: A numpydoc section heading (``Parameters`` over a dashed line), with its indentation.
_SECTION = re.compile(r"^([ \t]*)[A-Z][A-Za-z ]*\n[ \t]*-{3,}[ \t]*$", flags=re.MULTILINE)


def _inherited_docstring(base_doc, own_doc):
    """The docstring of a subclass method: the base's, with the subclass's note.

    ``own_doc`` None gives ``base_doc``; an ``own_doc`` with sections of its
    own replaces it; any other ``own_doc`` is a short note (what this
    subclass computes differently), added to the base's extended summary,
    before its first section, at its indentation.
    """
    if not own_doc:
        return base_doc
    if _SECTION.search(own_doc):
        return own_doc
    first_section = _SECTION.search(base_doc)
    head = base_doc[:first_section.start()] if first_section else base_doc.rstrip() + "\n"
    indent = first_section.group(1) if first_section else ""
    note = "\n".join(indent + line if line else line
                     for line in inspect.cleandoc(own_doc).splitlines())
    tail = base_doc[first_section.start():] if first_section else ""
    return f"{head.rstrip()}\n\n{note}\n\n{tail}"


class BaseChannel(ABC):
    """Common interface and helpers of the sequence multi-index channels.

    Subclasses set ``n_tokens`` (L), ``n_directions`` (p) and
    ``y_trailing_shape`` (the shape of one target) and implement
    :meth:`output`, :meth:`posterior` and, for noisy channels, :meth:`sample`.

    The methods are documented here once.  A subclass's override inherits
    the docstring (its ``__doc__`` is filled in when the class is created,
    so ``help``, numpydoc and Sphinx show it); a short docstring of its own,
    without sections, is kept as a note at the end of the extended summary.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _DOCUMENTED_METHODS:
            method = cls.__dict__.get(name)
            if callable(method):
                base_doc = getattr(super(cls, cls), name).__doc__
                method.__doc__ = _inherited_docstring(base_doc, method.__doc__)

    #: True when ``g`` is even in every column of ``Z``, so that
    #: ``E[Z | y] = 0`` and ``q = 0`` is a fixed point of state evolution.
    even = True

    #: True when :meth:`posterior` itself integrates numerically over a grid,
    #: so that an outer quadrature over ``Z`` would multiply the cost (the
    #: weak-recovery threshold then uses Monte Carlo).
    posterior_is_quadrature = False

    #: True when :meth:`posterior` computes in the namespace and on the device
    #: of array-API inputs.  False (the default, safe for NumPy-only
    #: subclasses) makes GAMP call the posterior on the host in float64 and
    #: state evolution simulate on the host, results moved back.
    array_api_posterior = False

    @property
    def supports_posterior(self):
        """Whether :meth:`posterior` is implemented for these parameters."""
        return True

    def check_posterior_support(self):
        """Raise ``ValueError`` unless :meth:`posterior` is available.

        GAMP, state evolution and the threshold finder call this first, so an
        unsupported configuration fails before any data are validated or
        Monte Carlo samples drawn.
        """
        if not self.supports_posterior:
            raise ValueError(
                f"{self!r} has no posterior implementation: {self._posterior_limits}"
            )

    def sample(self, Z, random_state=None):
        """Draw targets ``y ~ P_out(. | Z)``.

        Parameters
        ----------
        Z : ndarray of shape (n_samples, n_tokens, n_directions)
            Pre-activations ``X W / sqrt(d)``.
        random_state : int, RandomState instance or None, default=None
            Used by noisy channels only.

        Returns
        -------
        y : ndarray of shape ``(n_samples,) + y_trailing_shape``
            Targets.
        """
        return self.output(self._check_Z(Z))

    @abstractmethod
    def output(self, Z):
        """Noiseless output ``g(Z)``, the conditional mean of ``y`` given ``Z``.

        Used for test errors and predictions.

        Parameters
        ----------
        Z : ndarray of shape (n_samples, n_tokens, n_directions)
            Pre-activations ``X W / sqrt(d)``.

        Returns
        -------
        y : ndarray of shape ``(n_samples,) + y_trailing_shape``
            Outputs, in the namespace, on the device and in the dtype of
            ``Z``.
        """

    @abstractmethod
    def posterior(self, y, omega, V):
        """Posterior moments of ``Z`` given ``(y, omega, V)``.

        The prior of the token rows is ``z_l ~ N(omega_l, V)``, independent
        across tokens and samples, and the likelihood ``P_out(y | Z)``.

        Parameters
        ----------
        y : ndarray of shape ``(n_samples,) + y_trailing_shape``
            Targets.
        omega : ndarray of shape (n_samples, n_tokens, n_directions)
            Means of the Gaussian prior on the token rows.
        V : ndarray of shape (n_directions, n_directions)
            Covariance of every token row (a host matrix).

        Returns
        -------
        mean : ndarray of shape (n_samples, n_tokens, n_directions)
            Posterior mean.
        cov : ndarray of shape (n_samples, n_tokens, n_directions, n_tokens, \
n_directions)
            Posterior covariance.
        log_partition : ndarray of shape (n_samples,)
            ``log Z_out`` up to a function of ``y`` only.
        """

    def _check_Z(self, Z):
        if array_api_namespace(Z) is None:
            Z = np.asarray(Z, dtype=np.float64)
        expected = (self.n_tokens, self.n_directions)
        if Z.ndim != 3 or Z.shape[1:] != expected:
            raise ValueError(
                f"{type(self).__name__} expects Z of shape (n_samples, {expected[0]}, "
                f"{expected[1]}) (n_tokens, n_directions), got {Z.shape}."
            )
        return Z

    def check_y(self, y, n_samples=None):
        """Validate targets for this channel.

        Parameters
        ----------
        y : array-like
            Targets, of shape ``(n_samples,) + y_trailing_shape``.
        n_samples : int, default=None
            Expected number of samples.

        Returns
        -------
        y : ndarray of float64
            The validated targets.

        Raises
        ------
        ValueError
            If the shape or the values are incompatible with the channel.
        """
        y = np.asarray(y)
        if np.iscomplexobj(y):
            raise ValueError("Complex data not supported: y has a complex dtype.")
        y = np.asarray(y, dtype=np.float64)
        shape = tuple(self.y_trailing_shape)
        if y.ndim == 1 and int(np.prod(shape)) == 1:
            # One scalar target per sample (e.g. LinearChannel() with one
            # token and one direction): a plain 1-D y is accepted.
            y = y.reshape((-1,) + shape)
        if y.ndim != 1 + len(shape) or y.shape[1:] != shape:
            raise ValueError(
                f"{type(self).__name__} (n_tokens={self.n_tokens}, n_directions="
                f"{self.n_directions}) expects y of shape (n_samples, "
                f"{', '.join(map(str, shape))}), got {y.shape}."
            )
        if n_samples is not None and y.shape[0] != n_samples:
            raise ValueError(
                f"y has {y.shape[0]} samples but X has {n_samples}; they must match."
            )
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity.")
        self._check_y_values(y)
        return y

    def _check_y_values(self, y):
        """Hook for value constraints (support of the channel)."""

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"

    def _params(self):
        return {"n_tokens": self.n_tokens, "n_directions": self.n_directions}

    def __eq__(self, other):
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self._params().items()))))


@functools.lru_cache(maxsize=16)
def tensor_gauss_hermite(dim, n_nodes):
    """Tensor Gauss-Hermite rule for ``E f(Z)``, ``Z ~ N(0, I_dim)``.

    Parameters
    ----------
    dim : int
    n_nodes : int
        Nodes per axis.

    Returns
    -------
    nodes : ndarray of shape (n_nodes**dim, dim)
        In ``itertools.product`` order; read-only (the result is cached).
    log_weights : ndarray of shape (n_nodes**dim,)
        Log-weights, summing (in probability) to one.
    """
    x, w = special.roots_hermitenorm(n_nodes)
    axes = np.meshgrid(*([x] * dim), indexing="ij")
    nodes = np.stack(axes, axis=-1).reshape(-1, dim)
    log_w1 = np.log(w / np.sqrt(2 * np.pi))
    log_weights = sum(np.meshgrid(*([log_w1] * dim), indexing="ij")).ravel()
    nodes.flags.writeable = False
    log_weights.flags.writeable = False
    return nodes, log_weights


def _as_real_host(a, name):
    """``a`` as a float64 NumPy array, or a ``ValueError`` naming ``name``."""
    a = to_numpy(a)
    if np.iscomplexobj(a):
        raise ValueError(f"Complex data not supported: {name} has a complex dtype.")
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real numeric array, got dtype {a.dtype}.") from exc


def check_posterior_V(V, p):
    """``V`` as a finite, symmetric positive definite ``p x p`` float64 host matrix.

    A scalar is accepted for ``p = 1``.  Raises ``ValueError`` otherwise.
    """
    V = _as_real_host(V, "V")
    if V.ndim == 0 and p == 1:
        V = V.reshape(1, 1)
    if V.shape != (p, p):
        raise ValueError(f"V must have shape ({p}, {p}) (n_directions x n_directions), "
                         f"got {V.shape}.")
    if not np.all(np.isfinite(V)):
        raise ValueError("V contains NaN or infinity; it must be a finite covariance matrix.")
    scale = float(np.max(np.abs(V)))
    if not np.allclose(V, V.T, rtol=1e-8, atol=1e-12 * scale):
        raise ValueError("V must be symmetric (a covariance matrix).")
    V = 0.5 * (V + V.T)
    smallest = float(np.linalg.eigvalsh(V)[0])
    if not smallest > 0:
        raise ValueError(f"V must be positive definite; smallest eigenvalue {smallest:.3g}.")
    return V


def _check_posterior_args(channel, y, omega, V):
    """``(y, omega, V, xp)``: ``y`` moved to ``omega``'s namespace, ``V`` a host matrix.

    Every channel posterior starts here, before any kernel runs: ``omega``
    must have shape (n, L, p), ``y`` shape ``(n,) + y_trailing_shape`` with
    the same ``n`` (a numba kernel would otherwise read past the end of the
    shorter array), both finite and real, and ``V`` a finite symmetric
    positive definite ``p x p`` matrix.  NumPy ``y`` is also checked against
    the channel's support (``_check_y_values``).
    """
    L, p = channel.n_tokens, channel.n_directions
    shape = tuple(channel.y_trailing_shape)
    xp = array_api_namespace(omega)
    if xp is None:
        xp = np
        omega = _as_real_host(omega, "omega")
        y = _as_real_host(y, "y")
    else:
        if not xp.isdtype(omega.dtype, "real floating"):
            raise ValueError(f"omega must be a real floating array, got dtype {omega.dtype}.")
        if array_api_namespace(y) is not xp:
            y = move_like(_as_real_host(y, "y"), omega)
    if omega.ndim != 3 or tuple(omega.shape[1:]) != (L, p):
        raise ValueError(f"omega must have shape (n_samples, {L}, {p}), got "
                         f"{tuple(omega.shape)}.")
    n = omega.shape[0]
    if y.ndim == 1 and math.prod(shape) == 1:
        y = xp.reshape(y, (-1,) + shape)
    if tuple(y.shape) != (n,) + shape:
        raise ValueError(
            f"{type(channel).__name__}.posterior expects y of shape "
            f"{(n,) + shape} (n_samples of omega, then y_trailing_shape), got "
            f"{tuple(y.shape)}; y and omega must have the same number of samples."
        )
    if not bool(xp.all(xp.isfinite(omega))):
        raise ValueError("omega contains NaN or infinity.")
    if not bool(xp.all(xp.isfinite(y))):
        raise ValueError("y contains NaN or infinity.")
    if xp is np:
        channel._check_y_values(y)
    V = check_posterior_V(V, p)
    return y, omega, V, xp


def _inv_logdet(V):
    """Inverse and log-determinant of a symmetric positive definite matrix."""
    w, U = np.linalg.eigh(V)
    if w[0] <= 0:
        raise ValueError(f"V must be positive definite; smallest eigenvalue {w[0]:.3g}.")
    return (U / w) @ U.T, float(np.sum(np.log(w)))


# --------------------------------------------------------------------------
# Element-wise sign-symmetric channels: y = |z| and y = z^2
# --------------------------------------------------------------------------


class _SignChannel(BaseChannel):
    """Channels with ``y_{lk} = h(|z_{lk}|)``: the posterior is over signs.

    For each token the posterior is supported on the ``2**p`` points
    ``s * r`` (``s`` in {-1, 1}^p, ``r = |z|`` recovered from ``y``); tokens
    are independent given ``(y, omega)``, so cross-token covariances vanish.
    """

    array_api_posterior = True

    def __init__(self, n_tokens=1, n_directions=1):
        self.n_tokens = check_int(n_tokens, "n_tokens")
        self.n_directions = check_int(n_directions, "n_directions")
        if self.n_directions > 10:
            raise ValueError("element-wise sign channels enumerate 2**n_directions signs; "
                             "n_directions must be <= 10.")
        self.y_trailing_shape = (self.n_tokens, self.n_directions)

    def _check_y_values(self, y):
        if np.any(y < 0):
            raise ValueError(f"{type(self).__name__} outputs are non-negative; y has "
                             "negative entries.")

    def posterior(self, y, omega, V):
        """Exact: each token's posterior is supported on the ``2**p`` sign
        patterns of ``|z|``, which ``y`` determines.
        """
        y, omega, V, xp = _check_posterior_args(self, y, omega, V)
        n, L, p = omega.shape
        Vinv, logdet = _inv_logdet(V)
        r = self._magnitude(y, xp)  # (n, L, p)
        signs_host = np.array(list(itertools.product((1.0, -1.0), repeat=p)))  # (S, p)
        S = signs_host.shape[0]
        signs = move_like(signs_host, omega)
        # Support points s * r; every (n, L, S) quadratic form in one product.
        diff = xp.reshape(signs[None, None, ...] * r[:, :, None, :] - omega[:, :, None, :],
                          (n * L * S, p))
        logw = -0.5 * xp.reshape(xp.sum((diff @ move_like(Vinv, omega)) * diff, axis=1),
                                 (n * L, S))
        mx = xp.max(logw, axis=1, keepdims=True)
        w = xp.exp(logw - mx)
        norm = xp.sum(w, axis=1, keepdims=True)
        w = w / norm
        sign_mean = xp.reshape(w @ signs, (n, L, p))
        mean = sign_mean * r
        # Cov(s_i, s_j) = 4 [P(++) P(--) - P(+-) P(-+)] for +-1 signs: exact,
        # and unlike E[s_i s_j] - E[s_i] E[s_j] free of cancellation when a
        # sign is nearly certain (small V), where float32 would give negative
        # variances.  The four joint probabilities come from one product.
        plus = (signs_host > 0).astype(np.float64)
        minus = 1.0 - plus
        joint = np.concatenate(
            [(a[:, :, None] * b[:, None, :]).reshape(S, p * p)
             for a, b in ((plus, plus), (minus, minus), (plus, minus), (minus, plus))], axis=1)
        probs = xp.reshape(w @ move_like(joint, omega), (n, L, 4, p, p))
        sign_cov = 4.0 * (probs[:, :, 0, ...] * probs[:, :, 1, ...]
                          - probs[:, :, 2, ...] * probs[:, :, 3, ...])
        block = sign_cov * (r[..., :, None] * r[..., None, :])
        log_partition = xp.sum(xp.reshape(mx[:, 0] + xp.log(norm[:, 0]), (n, L)), axis=1) - (
            0.5 * L * (logdet + p * math.log(2 * math.pi)))
        return mean, _block_diagonal_tokens(block, L), log_partition


class AbsChannel(_SignChannel):
    """Phase retrieval ``y = |Z|`` (element-wise).

    Parameters
    ----------
    n_tokens : int, default=1
        Number of tokens ``L``.
    n_directions : int, default=1
        Number of directions ``p`` (columns of ``W``).

    Notes
    -----
    With ``L = p = 1`` this is real phase retrieval, whose weak-recovery
    threshold is ``alpha_c = 1/2``; in general it is ``1/(2L)`` per
    direction, like :class:`SquareChannel`.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.amp import AbsChannel
    >>> AbsChannel().output(np.array([[[-1.5]]]))
    array([[[1.5]]])
    """

    def output(self, Z):
        """Here ``g(Z) = |Z|`` element-wise."""
        Z = self._check_Z(Z)
        return namespace_or_numpy(Z).abs(Z)

    def _magnitude(self, y, xp):
        return y


class SquareChannel(_SignChannel):
    """Element-wise square ``y = Z**2`` (``y = (z_l^2)_l`` for ``p = 1``).

    Parameters
    ----------
    n_tokens : int, default=1
        Number of tokens ``L``.
    n_directions : int, default=1
        Number of directions ``p``.

    Notes
    -----
    The weak-recovery threshold for ``p = 1`` is ``alpha_c = 1/(2L)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.amp import SquareChannel
    >>> SquareChannel(n_tokens=2).output(np.array([[[2.0], [-1.0]]]))[0, :, 0]
    array([4., 1.])
    """

    def output(self, Z):
        """Here ``g(Z) = Z**2`` element-wise."""
        return self._check_Z(Z) ** 2

    def _magnitude(self, y, xp):
        return xp.sqrt(y)


# --------------------------------------------------------------------------
# y = z z^T and y = sum_l z_l^2 (p = 1)
# --------------------------------------------------------------------------


class OuterProductChannel(BaseChannel):
    """Sign-revealing outer product ``y = z z^T`` for one direction.

    ``z`` in R^L is the single column of ``Z``; ``y`` determines ``z`` up to a
    global sign, so the posterior is supported on two points.

    Parameters
    ----------
    n_tokens : int, default=2
        Number of tokens ``L``.

    Notes
    -----
    The weak-recovery threshold is ``alpha_c = 1/(L(L+1))``, which saturates
    the Jensen lower bound of even channels.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.amp import OuterProductChannel
    >>> OuterProductChannel(n_tokens=2).output(np.array([[[1.0], [-2.0]]]))[0]
    array([[ 1., -2.],
           [-2.,  4.]])
    """

    array_api_posterior = True

    def __init__(self, n_tokens=2):
        self.n_tokens = check_int(n_tokens, "n_tokens")
        self.n_directions = 1
        self.y_trailing_shape = (self.n_tokens, self.n_tokens)

    def _params(self):
        return {"n_tokens": self.n_tokens}

    def output(self, Z):
        """Here ``g(Z) = z z^T``, of shape (n_samples, n_tokens, n_tokens)."""
        z = self._check_Z(Z)[:, :, 0]
        return z[:, :, None] * z[:, None, :]

    def _check_y_values(self, y):
        if np.any(np.einsum("nll->nl", y) < 0) or not np.allclose(
            y, y.transpose(0, 2, 1), atol=1e-8
        ):
            raise ValueError("OuterProductChannel targets must be symmetric with a "
                             "non-negative diagonal (y = z z^T).")

    def posterior(self, y, omega, V):
        """Exact: ``y`` determines ``z`` up to a global sign, so the posterior
        has two points.
        """
        y, omega, V, xp = _check_posterior_args(self, y, omega, V)
        v = float(V[0, 0])
        L = self.n_tokens
        eye = move_like(np.eye(L), omega)
        diag = _positive_part(xp.sum(y * eye, axis=2))
        r = xp.sqrt(diag)
        # The signs of z are those of the row of y at the largest |z_l|
        # (sign(y_ref,l) = sign(z_ref) sign(z_l)); a zero entry counts as +.
        ref = xp.argmax(diag, axis=1)
        is_ref = xp.astype(xp.arange(L, device=device(ref))[None, :] == ref[:, None],
                           omega.dtype)
        ref_row = xp.sum(y * is_ref[:, :, None], axis=1)
        z0 = (1.0 - 2.0 * xp.astype(ref_row < 0, omega.dtype)) * r  # one of the two solutions
        w = omega[:, :, 0]
        h = xp.sum(z0 * w, axis=1) / v
        t = xp.tanh(h)
        mean = t[:, None] * z0
        cov = (1 - t**2)[:, None, None] * z0[:, :, None] * z0[:, None, :]
        # -(|z0|^2 + |w|^2) / 2v + log(2 cosh h), written without the
        # cancellation of two large terms when v is small:
        # -|z0 - sign(h) w|^2 / 2v + log(1 + exp(-2|h|)).
        sign_h = 1.0 - 2.0 * xp.astype(h < 0, omega.dtype)  # +1 at h = 0
        gap = z0 - sign_h[:, None] * w
        log_partition = (
            -0.5 * xp.sum(gap**2, axis=1) / v
            + xp.log1p(xp.exp(-2.0 * xp.abs(h)))
            - 0.5 * L * math.log(v)
        )
        return mean[:, :, None], cov[:, :, None, :, None], log_partition


class SumSquareChannel(BaseChannel):
    """Sum of squares over tokens ``y = sum_l z_l^2`` for one direction.

    Given ``y`` the vector ``z`` lies on the sphere of radius ``sqrt(y)``; the
    posterior is a von Mises-Fisher distribution, whose mean and covariance
    are expressed with Bessel-function ratios.

    Parameters
    ----------
    n_tokens : int, default=2
        Number of tokens ``L``.

    Notes
    -----
    The weak-recovery threshold is ``alpha_c = 1/2`` for every ``L``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.amp import SumSquareChannel
    >>> SumSquareChannel(n_tokens=2).output(np.array([[[1.0], [2.0]]]))
    array([[5.]])
    """

    array_api_posterior = True

    def __init__(self, n_tokens=2):
        self.n_tokens = check_int(n_tokens, "n_tokens")
        self.n_directions = 1
        self.y_trailing_shape = (1,)

    def _params(self):
        return {"n_tokens": self.n_tokens}

    def output(self, Z):
        """Here ``g(Z) = sum_l z_l^2``, of shape (n_samples, 1)."""
        Z = self._check_Z(Z)
        return namespace_or_numpy(Z).sum(Z**2, axis=1)

    def _check_y_values(self, y):
        if np.any(y < 0):
            raise ValueError("SumSquareChannel outputs are non-negative; y has negative "
                             "entries.")

    def posterior(self, y, omega, V):
        """Exact: a von Mises-Fisher law on the sphere of radius ``sqrt(y)``."""
        y, omega, V, xp = _check_posterior_args(self, y, omega, V)
        v = float(V[0, 0])
        L = self.n_tokens
        r = xp.sqrt(_positive_part(xp.reshape(y, (-1,))))
        w = omega[:, :, 0]
        norm_w = xp.sqrt(xp.sum(w**2, axis=1))
        # The Bessel functions of order L/2 - 1 have no array-API version:
        # they are evaluated on the host, in float64, on the (n,)
        # concentrations only, and come back in one transfer.
        terms = move_like(np.stack(_von_mises_fisher_terms(
            to_numpy(r * norm_w, dtype=np.float64) / v, L)),
                          omega)
        A, A_over_k, radial, log_bessel = (terms[i, ...] for i in range(4))
        # Unit mean direction; mu = 0 where omega = 0 (then w = 0 too).
        mu = w / (norm_w + xp.astype(norm_w == 0, omega.dtype))[:, None]
        mean = (r * A)[:, None] * mu
        # Tangential variance A/k off mu, radial variance 1 - A^2 - (L-1) A/k
        # along it (r^2 times): no small difference of large terms.
        mu_outer = mu[:, :, None] * mu[:, None, :]
        cov = (r**2)[:, None, None] * (
            A_over_k[:, None, None] * (move_like(np.eye(L), omega) - mu_outer)
            + radial[:, None, None] * mu_outer
        )
        log_partition = -0.5 * (r - norm_w) ** 2 / v + log_bessel - 0.5 * L * math.log(v)
        return mean[:, :, None], cov[:, :, None, :, None], log_partition


#: Terms of the large-argument (Hankel) series used by the von Mises-Fisher
#: moments, and the smallest concentration (times ``max(1, nu^2)``) where it
#: replaces the exact Bessel functions.
_VMF_SERIES_TERMS = 14
_VMF_SERIES_FROM = 64.0


@functools.lru_cache(maxsize=64)
def _von_mises_fisher_series(L):
    """Power series in ``t = 1/k`` of the von Mises-Fisher terms for large ``k``.

    With ``S_nu(t) = sum_j (-1)^j a_j(nu) t^j`` (Hankel's expansion
    ``I_nu(k) e^-k sqrt(2 pi k) ~ S_nu(1/k)``), returns the coefficients of
    ``1 - A``, ``A``, ``1 - A^2 - (L - 1) t A`` (whose terms in ``t^0`` and
    ``t^1`` vanish identically and are set to zero, so that the radial
    variance has no cancellation) and ``log S_nu``, all truncated at
    ``_VMF_SERIES_TERMS`` terms.
    """
    J = _VMF_SERIES_TERMS
    nu = 0.5 * L - 1.0

    def hankel(order):
        c = np.empty(J)
        c[0] = 1.0
        for j in range(1, J):
            c[j] = -c[j - 1] * (4 * order**2 - (2 * j - 1) ** 2) / (8.0 * j)
        return c

    def divide(num, den):
        out = np.zeros(J)
        for j in range(J):
            out[j] = (num[j] - np.dot(out[:j], den[j:0:-1])) / den[0]
        return out

    def multiply(a, b):
        return np.convolve(a, b)[:J]

    S0, S1 = hankel(nu), hankel(nu + 1)
    one_minus_A = divide(S0 - S1, S0)
    A = -one_minus_A
    A[0] += 1.0
    shifted_A = np.concatenate([[0.0], A[:-1]])  # t * A
    radial = -multiply(A, A) - (L - 1) * shifted_A
    radial[0] += 1.0
    radial[:2] = 0.0
    # log S = sum_m (-1)^(m+1) (S - 1)^m / m as a series (S - 1 = O(t)).
    X = S0.copy()
    X[0] = 0.0
    log_S = np.zeros(J)
    power = np.zeros(J)
    power[0] = 1.0
    for m in range(1, J):
        power = multiply(power, X)
        log_S += (-1) ** (m + 1) * power / m
    return one_minus_A, A, radial, log_S


def _polyval_t(coefficients, t):
    """``sum_j c_j t^j`` (Horner)."""
    out = np.zeros_like(t)
    for c in coefficients[::-1]:
        out = out * t + c
    return out


def _von_mises_fisher_terms(kappa, L):
    """Moments and log-normaliser of the von Mises-Fisher law on S^{L-1}.

    Returns ``A(k)``, ``A(k) / k``, ``1 - A(k)^2 - (L - 1) A(k) / k`` and
    ``log(k^-nu I_nu(k)) - k``, with ``A(k) = I_{L/2}(k) / I_{L/2-1}(k)`` the
    mean resultant length (``E u = A mu``), ``A / k`` the variance of ``u``
    across ``mu`` and the third term its variance along ``mu``; the last is
    the log-normaliser up to constants, less ``k`` (so that the caller adds
    ``k`` to a Gaussian exponent without cancellation).  Small ``k`` uses the
    limits ``A(k)/k -> 1/L`` and ``k^-nu I_nu(k) -> 2^-nu / Gamma(nu + 1)``.
    Large ``k`` (``k >= 64 max(1, nu^2)``) uses Hankel's asymptotic series:
    ``scipy.special.ive`` is NaN for ``k >~ 1e10`` (reached when GAMP's ``V``
    hits its floor near perfect recovery), and the radial variance, of order
    ``1/k^2``, would otherwise be the difference of terms of order ``1/k``.
    """
    kappa = np.asarray(kappa, dtype=np.float64)
    nu = 0.5 * L - 1.0
    small = kappa < 1e-8
    large = kappa >= _VMF_SERIES_FROM * max(1.0, nu**2)
    ks = np.where(small | large, 1.0, kappa)
    with np.errstate(invalid="ignore", divide="ignore"):
        ive_nu = special.ive(nu, ks)
        A = special.ive(nu + 1, ks) / ive_nu
        A_over_k = np.where(small, 1.0 / L, A / ks)
        A = np.where(small, kappa / L, A)
        radial = 1.0 - A**2 - (L - 1) * A_over_k
        log_bessel = np.where(
            small,
            -nu * np.log(2.0) - special.gammaln(nu + 1) - kappa,
            np.log(ive_nu) - nu * np.log(ks),
        )
    if np.any(large):
        _, A_series, radial_series, log_S = _von_mises_fisher_series(L)
        kl = np.where(large, kappa, 1.0)
        t = 1.0 / kl
        A_large = _polyval_t(A_series, t)
        A = np.where(large, A_large, A)
        A_over_k = np.where(large, A_large * t, A_over_k)
        radial = np.where(large, _polyval_t(radial_series, t), radial)
        log_bessel = np.where(
            large,
            -0.5 * np.log(2 * np.pi * kl) + _polyval_t(log_S, t) - nu * np.log(kl),
            log_bessel,
        )
    return A, A_over_k, radial, log_bessel


# --------------------------------------------------------------------------
# Linear-Gaussian channel
# --------------------------------------------------------------------------


class LinearChannel(BaseChannel):
    """Linear-Gaussian channel ``y = Z + noise_std * eps``.

    Parameters
    ----------
    n_tokens : int, default=1
        Number of tokens ``L``.
    n_directions : int, default=1
        Number of directions ``p``.
    noise_std : float, default=0.1
        Standard deviation of the Gaussian noise (must be positive).

    Notes
    -----
    The channel is not even (``E[Z | y] != 0``), so there is no
    weak-recovery threshold: any ``alpha > 0`` gives a positive overlap.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.amp import LinearChannel
    >>> LinearChannel(noise_std=0.5).output(np.array([[[1.0]]]))
    array([[[1.]]])
    """

    array_api_posterior = True
    even = False

    def __init__(self, n_tokens=1, n_directions=1, noise_std=0.1):
        self.n_tokens = check_int(n_tokens, "n_tokens")
        self.n_directions = check_int(n_directions, "n_directions")
        self.noise_std = check_real(noise_std, "noise_std", strict=True)
        self.y_trailing_shape = (self.n_tokens, self.n_directions)

    def _params(self):
        return {**super()._params(), "noise_std": self.noise_std}

    def sample(self, Z, random_state=None):
        """Here ``y = Z + noise_std * eps``."""
        Z = self._check_Z(Z)
        noise = standard_normal_like(check_random_state(random_state), Z.shape, Z)
        return Z + self.noise_std * noise

    def output(self, Z):
        """Here ``g(Z) = Z`` (a copy)."""
        Z = self._check_Z(Z)
        return namespace_or_numpy(Z).asarray(Z, copy=True)

    def posterior(self, y, omega, V):
        """Gaussian conjugacy: exact, and ``log_partition`` is
        ``log N(y; omega, V + noise_std**2 I)`` summed over tokens.
        """
        y, omega, V, xp = _check_posterior_args(self, y, omega, V)
        n, L, p = omega.shape
        s2 = self.noise_std**2
        Vinv, _ = _inv_logdet(V)
        post, _ = _inv_logdet(Vinv + np.eye(p) / s2)
        mean = (omega @ move_like(Vinv, omega) + y / s2) @ move_like(post, omega)
        block = xp.broadcast_to(move_like(post, omega), (n, L, p, p))
        tinv, tlogdet = _inv_logdet(V + s2 * np.eye(p))
        diff = y - omega
        log_partition = -0.5 * xp.sum((diff @ move_like(tinv, omega)) * diff, axis=(1, 2)) - (
            0.5 * L * (tlogdet + p * math.log(2 * math.pi)))
        return mean, _block_diagonal_tokens(block, L), log_partition


# --------------------------------------------------------------------------
# Deep tied low-rank attention
# --------------------------------------------------------------------------


def _softmax_rows(S):
    xp = namespace_or_numpy(S)
    E = xp.exp(S - xp.max(S, axis=-1, keepdims=True))
    return E / xp.sum(E, axis=-1, keepdims=True)


class DeepAttentionChannel(BaseChannel):
    """Deep tied low-rank self-attention as a sequence multi-index channel.

    Layer ``k`` has a tied query/key ``q_k`` (one column of ``W``), identity
    values and skip strength ``c``.  With ``z_k = X q_k / sqrt(d)`` (a column
    of ``Z``) and ``A(z) = softmax_row(z z^T) + c I``::

        u_1 = z_1,   u_k = A(u_{k-1}) ... applied as in the network,
        y = softmax_row(u_K u_K^T)                     (an L x L matrix)

    i.e. for two layers ``y = softmax(u u^T)`` with ``u = A(z_1) z_2``.

    Parameters
    ----------
    n_layers : int, default=2
        Number of attention layers ``K`` (= ``n_directions``).
    skip : float, default=1.0
        Skip-connection strength ``c``.
    n_tokens : int, default=2
        Sequence length ``L``.
    n_grid : int, default=64
        Grid points per axis of the tensor quadrature over the free
        variables of the two-layer posterior (``z_1`` in R^2); the cost of a
        posterior evaluation is ``2 * n_grid**2`` per sample.  The
        accuracy/speed trade-off of GAMP and state evolution.
    box : float, default=6.0
        Half-width of the two-layer quadrature box, in prior standard
        deviations of ``z_1`` around its prior mean.
    n_points : int, default=4096
        Quasi-Monte Carlo points of the three-layer posterior (a power of
        two, at least 64): the integral over the free ``(z_1, z_2)`` in R^4
        uses a fixed scrambled Sobol' set, each point carrying both sign
        branches; the cost is ``n_points`` per sample and the error
        decreases roughly as ``1 / n_points`` (see Notes).

    Notes
    -----
    Sampling and :meth:`output` work for any ``n_layers`` and ``n_tokens``.
    The posterior (needed by GAMP and state evolution) is implemented for
    ``n_tokens=2`` and ``n_layers`` in {1, 2, 3}.  The last softmax is
    inverted in closed form (``u = +-(a, -b)/sqrt(a+b)`` with ``a =
    log(y_00/y_01)``, ``b = log(y_11/y_10)``), which leaves the earlier
    layers free:

    * two layers: ``z_2 = A(z_1)^{-1} u`` with Jacobian ``1/|det A(z_1)|``,
      and the integral over ``z_1`` runs on a uniform tensor grid with
      log-sum-exp weights;
    * three layers: ``z_3 = M^{-1} u`` with ``M = A(A(z_1) z_2) A(z_1)`` and
      Jacobian ``1/|det M|``.  The integral over ``(z_1, z_2)`` is importance
      sampled from their Gaussian prior marginal with ``n_points``
      scrambled Sobol' points (the same points for every sample, so the
      posterior is a deterministic function of ``(y, omega, V)``), weighted
      by the conditional prior density of ``z_3`` over ``|det M|``, with
      log-sum-exp weights.  Against a dense tensor-grid reference, the
      default 4096 points give posterior means within about 2e-3 and
      covariances within about 5e-3 (absolute) for ``V`` near the
      identity, errors falling roughly as ``1 / n_points``; they grow as the
      conditional variance of ``z_3`` shrinks (``q_33 -> 1`` with layers
      1-2 unlearned: about 1e-2 and 2e-2 at ``V_33 = 0.05``), where fewer
      points carry weight.

    The posterior covariance is the weighted second moment at the same
    nodes (no finite differences).

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.amp import DeepAttentionChannel
    >>> y = DeepAttentionChannel().output(np.zeros((1, 2, 2)))
    >>> y[0]
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """

    posterior_is_quadrature = True
    _posterior_limits = (
        "the posterior needs n_tokens=2 (closed-form inversion of the last "
        "softmax) and n_layers in (1, 2, 3); sampling and output work for any size."
    )

    @property
    def supports_posterior(self):
        """Whether :meth:`posterior` is implemented (``n_tokens=2``, ``n_layers <= 3``)."""
        return self.n_tokens == 2 and self.n_layers <= 3

    def __init__(self, n_layers=2, skip=1.0, n_tokens=2, *, n_grid=64, box=6.0,
                 n_points=4096):
        self.n_layers = check_int(n_layers, "n_layers")
        self.skip = check_real(skip, "skip")
        self.n_tokens = check_int(n_tokens, "n_tokens", minimum=2)
        self.n_grid = check_int(n_grid, "n_grid", minimum=4)
        self.box = check_real(box, "box", strict=True)
        self.n_points = check_int(n_points, "n_points", minimum=64)
        if self.n_points & (self.n_points - 1):
            raise ValueError(f"n_points must be a power of two (Sobol' points), got "
                             f"{self.n_points}.")
        self.n_directions = self.n_layers
        self.y_trailing_shape = (self.n_tokens, self.n_tokens)

    def _params(self):
        return {
            "n_layers": self.n_layers,
            "skip": self.skip,
            "n_tokens": self.n_tokens,
            "n_grid": self.n_grid,
            "box": self.box,
            "n_points": self.n_points,
        }

    def output(self, Z):
        """Here ``g(Z)`` is the network's last attention matrix, of shape
        (n_samples, n_tokens, n_tokens) and row-stochastic; column ``k`` of
        ``Z`` is ``X q_k / sqrt(d)``.
        """
        Z = self._check_Z(Z)
        xp = namespace_or_numpy(Z)
        L = self.n_tokens
        eye = move_like(np.eye(L), Z)
        # B is the accumulated token-mixing matrix (h_{k-1} = B X).
        B = xp.broadcast_to(eye, (Z.shape[0], L, L))
        for k in range(self.n_layers):
            u = (B @ Z[:, :, k:k + 1])[:, :, 0]
            S = _softmax_rows(u[:, :, None] * u[:, None, :])
            if k == self.n_layers - 1:
                return S
            B = (S + self.skip * eye) @ B

    def _check_y_values(self, y):
        # Exact zeros are legitimate: sample/output give them where the
        # softmax underflows (|u_i u_j - u_i u_k| > ~745, e.g. |z| > 27 for
        # one layer); the inversion of the last softmax floors them.
        if np.any(y < 0) or np.any(y > 1) or not np.allclose(y.sum(axis=2), 1.0, atol=1e-6):
            raise ValueError("DeepAttentionChannel targets must be row-stochastic "
                             "matrices with non-negative entries (softmax outputs).")

    def invert_last_softmax(self, y):
        """Recover ``u`` (up to sign) from ``y = softmax(u u^T)``, ``L = 2``.

        Parameters
        ----------
        y : ndarray of shape (n_samples, 2, 2)
            Targets.

        Returns
        -------
        u : ndarray of shape (n_samples, 2)
            One of the two solutions ``+-u``.
        """
        if self.n_tokens != 2:
            raise ValueError(f"{self!r}: the closed-form inversion needs n_tokens=2.")
        # A softmax entry that underflowed to 0 is floored at the smallest
        # normal float: |u| is then the largest that float64 y can express,
        # instead of an infinite (NaN-producing) log-ratio.
        logy = np.log(np.maximum(y, np.finfo(np.float64).tiny))
        a = logy[:, 0, 0] - logy[:, 0, 1]
        b = logy[:, 1, 1] - logy[:, 1, 0]
        # a + b = (u_0 - u_1)^2 >= 0 is known only to the rounding error of
        # its terms: when both rows saturate on the same token (a = -b =
        # +-708 after the floor) it cancels, and dividing by sqrt(1e-300)
        # would give |u| ~ 1e152, whose squares overflow the posterior's
        # exponents.  Floor it at that resolution instead.
        floor = np.maximum(np.finfo(np.float64).eps * (np.abs(a) + np.abs(b)), 1e-300)
        s = np.sqrt(np.maximum(a + b, floor))
        return np.column_stack([a / s, -b / s])

    @_on_host("omega")
    def posterior(self, y, omega, V):
        """Numba quadrature on the host: an ``n_grid x n_grid`` grid over ``z_1``
        for two layers, ``n_points`` Sobol' points over ``(z_1, z_2)`` for
        three; needs ``n_tokens=2`` and ``n_layers <= 3``.
        """
        self.check_posterior_support()
        y, omega, V, _ = _check_posterior_args(self, y, omega, V)
        u = np.ascontiguousarray(self.invert_last_softmax(y))
        if self.n_layers == 1:
            return _one_layer_posterior(u, omega, V)
        if self.n_layers == 2:
            return self._two_layer_posterior(u, omega, V)
        return self._three_layer_posterior(u, omega, V)

    def _two_layer_posterior(self, u, omega, V):
        n = omega.shape[0]
        Vinv, logdet = _inv_logdet(V)
        grid = np.linspace(-self.box, self.box, self.n_grid)
        mean = np.empty((n, 4))
        second = np.empty((n, 4, 4))
        logZ = np.empty(n)
        omega_c = np.ascontiguousarray(omega.reshape(n, 4))
        block = 16
        n_blocks = -(-n // block)
        run_blocks(
            _attention_kernels.attention2_posterior_blocks,
            n_blocks,
            block,
            u,
            omega_c,
            np.ascontiguousarray(Vinv),
            grid,
            float(self.skip),
            float(np.sqrt(V[0, 0])),
            mean,
            second,
            logZ,
        )
        cov = second - mean[:, :, None] * mean[:, None, :]
        step = grid[1] - grid[0]
        logZ += 2 * np.log(step * np.sqrt(V[0, 0])) - logdet - 2 * np.log(2 * np.pi)
        return mean.reshape(n, 2, 2), cov.reshape(n, 2, 2, 2, 2), logZ

    def _three_layer_posterior(self, u, omega, V):
        n = omega.shape[0]
        offsets, cond_offsets, s2 = _three_layer_proposal(V, self.n_points)
        mean = np.empty((n, 6))
        second = np.empty((n, 6, 6))
        log_mean_weight = np.empty(n)
        block = 4
        run_blocks(
            _attention_kernels.attention3_posterior_blocks,
            -(-n // block),
            block,
            u,
            np.ascontiguousarray(omega.reshape(n, 6)),
            offsets,
            cond_offsets,
            1.0 / s2,
            float(self.skip),
            mean,
            second,
            log_mean_weight,
        )
        if not np.all(np.isfinite(log_mean_weight)):
            raise ValueError(
                f"{self!r}: no quasi-Monte Carlo point of the three-layer posterior "
                "carries weight for some sample (the attention matrices are singular "
                "there); the skip strength or the inputs are degenerate."
            )
        cov = second - mean[:, :, None] * mean[:, None, :]
        # log of the density of u: mean weight times the normaliser of the
        # conditional N(z_3; m, s2 I_2).
        logZ = log_mean_weight - np.log(2 * np.pi * s2)
        return mean.reshape(n, 2, 3), cov.reshape(n, 2, 3, 2, 3), logZ


def _one_layer_posterior(u, omega, V):
    """Closed form for one layer: ``Z`` is ``+-u``, weights ``exp(+-u.omega / v)``."""
    v = V[0, 0]
    w = omega[:, :, 0]
    h = np.sum(u * w, axis=1) / v
    t = np.tanh(h)
    mean = t[:, None] * u
    cov = (1 - t**2)[:, None, None] * u[:, :, None] * u[:, None, :]
    logZ = (-0.5 * (np.sum(u**2, 1) + np.sum(w**2, 1)) / v + np.logaddexp(h, -h)
            - 0.5 * 2 * np.log(v))
    return mean[:, :, None], cov[:, :, None, :, None], logZ


@functools.lru_cache(maxsize=8)
def _sobol_normal(n_points, dim):
    """``n_points`` scrambled Sobol' points mapped to ``N(0, I_dim)`` (fixed seed, read-only)."""
    from scipy.stats import qmc

    U = qmc.Sobol(dim, scramble=True, seed=0).random_base2(int(n_points).bit_length() - 1)
    # Scrambled points are never exactly 0 or 1, but clip so ndtri stays finite.
    E = special.ndtri(np.clip(U, 1e-15, 1 - 1e-15))
    E.flags.writeable = False
    return E


def _three_layer_proposal(V, n_points):
    """Quasi-Monte Carlo proposal of the three-layer posterior at token covariance ``V``.

    ``(z_1, z_2)`` of each token is drawn from its prior marginal
    ``N(omega_12, V_12)``; ``z_3`` given them has mean
    ``omega_3 + beta . (z_12 - omega_12)`` and variance ``s2``.

    Returns
    -------
    offsets : ndarray of shape (n_points, 4)
        ``(z_1, z_2) - omega`` of token 0 then token 1.
    cond_offsets : ndarray of shape (n_points, 2)
        ``beta . (z_12 - omega_12)`` of each token.
    s2 : float
        Conditional variance of ``z_3``.
    """
    E = _sobol_normal(n_points, 4)
    V12 = V[:2, :2]
    beta = np.linalg.solve(V12, V[:2, 2])
    s2 = float(V[2, 2] - V[2, :2] @ beta)
    if not s2 > 0:
        raise ValueError("V is numerically singular: the conditional variance of the last "
                         "layer given the first two is not positive.")
    chol = np.linalg.cholesky(V12)
    tokens = [E[:, 2 * l:2 * l + 2] @ chol.T for l in range(2)]
    offsets = np.ascontiguousarray(np.hstack(tokens))
    cond_offsets = np.ascontiguousarray(np.column_stack([t @ beta for t in tokens]))
    return offsets, cond_offsets, s2


# --------------------------------------------------------------------------
# Generic noisy channel by Gauss-Hermite quadrature
# --------------------------------------------------------------------------


def _check_trailing_shape(shape):
    """``shape`` as a tuple of positive Python ints, or a ``ValueError``."""
    if isinstance(shape, Integral) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(
            f"y_trailing_shape must be a tuple of positive integers, got {shape!r}."
        ) from None
    if not all(isinstance(s, Integral) and not isinstance(s, (bool, np.bool_)) and s >= 1
               for s in dims):
        raise ValueError(
            f"y_trailing_shape must be a tuple of positive integers, got {shape!r}."
        )
    return tuple(int(s) for s in dims)


class GenericChannel(BaseChannel):
    """Noisy channel ``y = func(Z) + noise_std * eps`` integrated by Gauss-Hermite.

    The posterior is computed on the tensor Gauss-Hermite grid of
    ``n_nodes ** (n_tokens * n_directions)`` points mapped through the prior
    ``N(omega_l, V)`` of each token, with log-sum-exp weights; keep
    ``n_tokens * n_directions`` small (at most 4 or 5).

    Parameters
    ----------
    func : callable
        Maps ``Z`` of shape (m, n_tokens, n_directions) to outputs of shape
        (m,) + y_trailing_shape; must be vectorised over the first axis.
    y_trailing_shape : tuple of int
        Shape of one output.
    n_tokens : int, default=1
        Number of tokens ``L``.
    n_directions : int, default=1
        Number of directions ``p``.
    noise_std : float, default=0.1
        Standard deviation of the Gaussian output noise (must be positive).
    n_nodes : int, default=12
        Gauss-Hermite nodes per dimension.
    even : bool, default=False
        Whether ``func`` is even in every column of ``Z``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.amp import GenericChannel
    >>> ch = GenericChannel(lambda Z: np.tanh(Z[:, :, 0]), (1,), noise_std=0.1)
    >>> ch.output(np.zeros((1, 1, 1)))
    array([[0.]])
    """

    def __init__(self, func, y_trailing_shape, n_tokens=1, n_directions=1, noise_std=0.1,
                 n_nodes=12, even=False):
        if not callable(func):
            raise ValueError("func must be callable.")
        self.func = func
        self.y_trailing_shape = _check_trailing_shape(y_trailing_shape)
        self.n_tokens = check_int(n_tokens, "n_tokens")
        self.n_directions = check_int(n_directions, "n_directions")
        self.noise_std = check_real(noise_std, "noise_std", strict=True)
        self.n_nodes = check_int(n_nodes, "n_nodes", minimum=2)
        self.even = bool(even)
        if self.n_nodes ** (self.n_tokens * self.n_directions) > 2_000_000:
            raise ValueError("n_nodes ** (n_tokens * n_directions) exceeds 2e6 nodes.")

    def _params(self):
        return {**super()._params(), "func": self.func,
                "y_trailing_shape": self.y_trailing_shape, "noise_std": self.noise_std,
                "n_nodes": self.n_nodes, "even": self.even}

    @_on_host("Z")
    def output(self, Z):
        """Here ``g(Z) = func(Z)``, evaluated on the host."""
        Z = self._check_Z(Z)
        return np.asarray(self.func(Z), dtype=np.float64).reshape((Z.shape[0],)
                                                                   + self.y_trailing_shape)

    def sample(self, Z, random_state=None):
        """Here ``y = func(Z) + noise_std * eps``."""
        out = self.output(Z)
        noise = standard_normal_like(check_random_state(random_state), out.shape, out)
        return out + self.noise_std * noise

    @_on_host("omega")
    def posterior(self, y, omega, V):
        """By tensor Gauss-Hermite quadrature on the host; ``log_partition`` is
        exact up to the quadrature error.
        """
        y, omega, V, _ = _check_posterior_args(self, y, omega, V)
        n, L, p = omega.shape
        D = L * p
        nodes, logw = tensor_gauss_hermite(D, self.n_nodes)
        K = nodes.shape[0]
        # Node offsets Z - omega = chol(V) applied per token: fixed for the call.
        offsets = nodes.reshape(K, L, p) @ np.linalg.cholesky(V).T
        mean = np.empty((n, L, p))
        cov = np.empty((n, L, p, L, p))
        logZ = np.empty(n)
        s2 = self.noise_std**2
        chunk = max(1, 200_000 // K)
        for start in range(0, n, chunk):
            sl = slice(start, min(n, start + chunk))
            Zs = omega[sl, None] + offsets[None]  # (m, K, L, p)
            m = Zs.shape[0]
            out = self.output(Zs.reshape(m * K, L, p)).reshape((m, K, -1))
            resid = out - y[sl].reshape(m, 1, -1)
            lw = logw[None] - 0.5 * np.sum(resid**2, axis=2) / s2
            mx = lw.max(axis=1, keepdims=True)
            wgt = np.exp(lw - mx)
            tot = wgt.sum(axis=1, keepdims=True)
            wgt /= tot
            flat = Zs.reshape(m, K, D)
            mu = np.einsum("mk,mki->mi", wgt, flat)
            sec = np.einsum("mk,mki,mkj->mij", wgt, flat, flat)
            mean[sl] = mu.reshape(m, L, p)
            cov[sl] = (sec - mu[:, :, None] * mu[:, None, :]).reshape(m, L, p, L, p)
            logZ[sl] = (mx[:, 0] + np.log(tot[:, 0])
                        - 0.5 * resid.shape[2] * np.log(2 * np.pi * s2))
        return mean, cov, logZ
