"""Hard routers for mixtures of experts: Voronoi prototypes and prototype trees.

A router sends each input to exactly one cell.  Two kinds exist:

* **flat**: an array of prototypes ``(n_cells, n_features)``; a row goes to
  its nearest prototype (squared Euclidean distance, ties to the smallest
  index), i.e. to the Voronoi cell that contains it.  ``n_cells`` distance
  evaluations per row.
* **tree**: a binary tree of centres.  A row starts at the root and moves to
  the nearer of the two children (ties to the left child) until it reaches a
  leaf.  ``2 * depth`` distance evaluations per row.  The leaves' centres are
  the prototypes.  Greedy descent equals the flat nearest-prototype rule only
  for special trees, such as the dyadic grid tree of :func:`grid_tree`; for a
  bisecting k-means tree the two can differ near cell boundaries.

The tree is stored as three arrays: ``centers`` ``(n_nodes, n_features)``,
``children`` ``(n_nodes, 2)`` (``-1`` at leaves; node 0 is the root) and
``leaf`` ``(n_nodes,)`` (the cell index of a leaf, ``-1`` elsewhere).  Leaves
are numbered depth-first, left child first, so that every cell of a left
subtree has a smaller index than every cell of the right subtree.
"""

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from . import _routing_numba as _kernels
from ..utils._threading import block_partition, run_blocks
from ..utils._validation import check_finite_output, draw_seed


def _route_blocks(kernel, X, *router):
    """Run a routing kernel over row blocks; the cell of each row."""
    X = np.ascontiguousarray(X)
    out = np.empty(X.shape[0], dtype=np.int64)
    n_blocks, block_size = block_partition(X.shape[0])
    run_blocks(kernel, n_blocks, block_size, X, *router, out)
    if out.size and out.min() < 0:
        # The kernels mark rows whose distances overflowed: never route them
        # silently to cell 0.
        check_finite_output(
            np.where(out < 0, np.inf, 0.0), "squared distance of an input to its prototypes"
        )
    return out


def route_flat(X, prototypes):
    """Index of the nearest prototype for each row, ties to the smallest index.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    prototypes : ndarray of shape (n_cells, n_features)

    Returns
    -------
    cells : ndarray of shape (n_samples,), dtype int64
    """
    prototypes = np.ascontiguousarray(prototypes, dtype=np.float64)
    return _route_blocks(_kernels.route_flat_blocks, X, prototypes)


def route_tree(X, tree):
    """Leaf reached by greedy nearest-child descent, for each row.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    tree : dict
        Keys ``"centers"``, ``"children"`` and ``"leaf"`` (see the module
        docstring).

    Returns
    -------
    cells : ndarray of shape (n_samples,), dtype int64
    """
    # Upcast (exactly) like route_flat: one kernel for float32 and float64 trees.
    centers = np.ascontiguousarray(tree["centers"], dtype=np.float64)
    return _route_blocks(_kernels.route_tree_blocks, X, centers, tree["children"], tree["leaf"])


def route(X, prototypes, tree):
    """Cell of each row: flat Voronoi routing, or tree descent if ``tree``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    prototypes : ndarray of shape (n_cells, n_features)
        Used when ``tree`` is None.
    tree : dict or None
        A prototype tree (see the module docstring).

    Returns
    -------
    cells : ndarray of shape (n_samples,), dtype int64
    """
    if tree is None:
        return route_flat(X, prototypes)
    return route_tree(X, tree)


def tree_depths(tree):
    """Depth (number of edges from the root) of every node."""
    children = tree["children"]
    depth = np.zeros(children.shape[0], dtype=np.int64)
    for node in range(children.shape[0]):  # parents precede their children
        for child in children[node]:
            if child >= 0:
                depth[child] = depth[node] + 1
    return depth


def _finish_tree(centers, children):
    """Arrays of a tree from node lists; leaves numbered depth-first, left first."""
    centers = np.asarray(centers, dtype=np.float64)
    children = np.asarray(children, dtype=np.int64).reshape(-1, 2)
    leaf = np.full(children.shape[0], -1, dtype=np.int64)
    stack = [0]
    n_leaves = 0
    while stack:
        node = stack.pop()
        if children[node, 0] < 0:
            leaf[node] = n_leaves
            n_leaves += 1
        else:
            stack.append(children[node, 1])
            stack.append(children[node, 0])
    tree = {"centers": centers, "children": children, "leaf": leaf}
    prototypes = np.empty((n_leaves, centers.shape[1]))
    prototypes[leaf[leaf >= 0]] = centers[leaf >= 0]
    return tree, prototypes


def grid_tree(lower, upper, n_cells):
    """Dyadic tree on the box ``[lower, upper]`` with ``n_cells`` leaves.

    The box is halved at its midpoint ``depth = log2(n_cells)`` times, cycling
    through the features (the node at depth ``k`` splits feature
    ``k % n_features``).  Every node's centre is the centre of its box, so
    the leaves' centres form a product grid and greedy descent returns the
    nearest leaf centre.  A leaf's side along feature ``j`` is
    ``(upper[j] - lower[j]) * 2**-k_j`` with ``k_j`` the number of splits of
    feature ``j``; for the unit cube and ``depth`` a multiple of
    ``n_features`` the leaves are the dyadic cubes of side
    ``2**(-depth / n_features)``.

    Parameters
    ----------
    lower, upper : ndarray of shape (n_features,)
    n_cells : int
        A power of two.

    Returns
    -------
    tree : dict
    prototypes : ndarray of shape (n_cells, n_features)
    """
    depth = int(round(np.log2(n_cells)))
    if n_cells < 1 or 2**depth != n_cells:
        raise ValueError(
            f"routing='grid' needs n_experts to be a power of 2 (dyadic cells), "
            f"got n_experts={n_cells}."
        )
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    n_features = lower.shape[0]
    centers, children = [], []
    # Breadth-first construction keeps parents before children.
    queue = [(lower.copy(), upper.copy(), 0)]
    head = 0
    while head < len(queue):
        lo, hi, level = queue[head]
        centers.append(0.5 * (lo + hi))
        if level == depth:
            children.append((-1, -1))
        else:
            axis = level % n_features
            mid = 0.5 * (lo[axis] + hi[axis])
            hi_left = hi.copy()
            hi_left[axis] = mid
            lo_right = lo.copy()
            lo_right[axis] = mid
            left = len(queue)
            children.append((left, left + 1))
            queue.append((lo, hi_left, level + 1))
            queue.append((lo_right, hi, level + 1))
        head += 1
    return _finish_tree(centers, children)


def bisecting_tree(X, n_cells, random_state, sample_weight=None):
    """Binary tree of centres by recursive 2-means (bisecting k-means).

    Starting from the whole sample, the leaf with the largest within-cell
    sum of squares is split by 2-means, as in scikit-learn's
    :class:`~sklearn.cluster.BisectingKMeans` with
    ``bisecting_strategy="biggest_inertia"``, until there are ``n_cells``
    leaves.  The children's centres are the 2-means centres, and the samples
    are sent to the children by the same nearest-child rule as the descent,
    so that the training cells are exactly the routing cells.  A leaf whose
    samples cannot be split in two non-empty parts is never split again; the
    tree may then have fewer leaves than requested.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_cells : int
    random_state : RandomState
        Seeds the 2-means runs.
    sample_weight : ndarray of shape (n_samples,) or None, default=None
        Weights of the rows in the centres (weighted means), the within-cell
        sums of squares and the 2-means runs; None means unit weights.

    Returns
    -------
    tree : dict
    prototypes : ndarray of shape (n_leaves, n_features)
    """
    X = np.asarray(X, dtype=np.float64)
    weights = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight)
    centers = [np.average(X, axis=0, weights=weights)]
    children = [[-1, -1]]
    members = {0: np.arange(X.shape[0])}

    def sse(node):
        rows = members[node]
        return float(weights[rows] @ ((X[rows] - centers[node]) ** 2).sum(axis=1))

    scores = {0: sse(0)}
    n_leaves = 1
    while n_leaves < n_cells and scores:
        node = max(scores, key=lambda k: (scores[k], -k))
        rows = members[node]
        del scores[node]
        if rows.shape[0] < 2:
            continue
        seed = draw_seed(random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            km = KMeans(2, n_init=1, random_state=seed).fit(
                X[rows], sample_weight=weights[rows]
            )
        pair = km.cluster_centers_.astype(np.float64)
        side = route_flat(X[rows], pair)  # ties to the left child, as in the descent
        if side.min() == side.max():
            continue
        for k in range(2):
            child = len(centers)
            centers.append(pair[k])
            children.append([-1, -1])
            members[child] = rows[side == k]
            scores[child] = sse(child)
            children[node][k] = child
        del members[node]
        n_leaves += 1
    return _finish_tree(centers, children)


def kmeans_prototypes(X, n_cells, random_state, sample_weight=None):
    """Prototypes for flat Voronoi routing: the (weighted) k-means centres of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_cells : int
    random_state : RandomState
    sample_weight : ndarray of shape (n_samples,) or None, default=None
        Passed to :class:`~sklearn.cluster.KMeans` (weighted centroids and
        weighted k-means++ seeding).

    Returns
    -------
    prototypes : ndarray of shape (n_cells, n_features)
    """
    seed = draw_seed(random_state)
    with warnings.catch_warnings():
        # Fewer distinct points than cells: duplicate centres give empty cells,
        # which the small-cell rule handles (and reports).
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_cells, n_init=1, random_state=seed).fit(X, sample_weight=sample_weight)
    return km.cluster_centers_.astype(np.float64)
