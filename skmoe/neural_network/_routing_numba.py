"""Numba kernels of the hard routers in :mod:`skmoe.neural_network._routing`.

Flat Voronoi routing (nearest prototype), greedy descent of a prototype tree,
both over row blocks for :func:`skmoe.utils._threading.run_blocks`, and the
counting sort that groups rows by the expert they are routed to.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def route_flat_blocks(block_start, block_stop, block_size, X, prototypes, out):
    """Nearest prototype (squared Euclidean), ties to the smallest index.

    ``-1`` for a row whose squared distances all overflow to infinity.
    """
    n = X.shape[0]
    n_features = X.shape[1]
    row_stop = min(n, block_stop * block_size)
    for row in range(block_start * block_size, row_stop):
        best = np.inf
        best_l = 0
        for l in range(prototypes.shape[0]):
            d = 0.0
            for a in range(n_features):
                diff = X[row, a] - prototypes[l, a]
                d += diff * diff
            if d < best:
                best = d
                best_l = l
        # -1: every squared distance overflowed, the nearest is unknown.
        out[row] = best_l if best < np.inf else -1


@njit(cache=True, nogil=True)
def route_tree_blocks(block_start, block_stop, block_size, X, centers, children, leaf_value, out):
    """Greedy descent of a binary tree: at each node go to the nearer child.

    ``children[node] = (left, right)`` or ``(-1, -1)`` at a leaf; ties go left.
    ``-1`` for a row whose squared distances to both children of a node
    overflow to infinity.
    """
    n = X.shape[0]
    n_features = X.shape[1]
    row_stop = min(n, block_stop * block_size)
    for row in range(block_start * block_size, row_stop):
        node = 0
        while children[node, 0] >= 0:
            left = children[node, 0]
            right = children[node, 1]
            d_left = 0.0
            d_right = 0.0
            for a in range(n_features):
                x = X[row, a]
                diff = x - centers[left, a]
                d_left += diff * diff
                diff = x - centers[right, a]
                d_right += diff * diff
            if not (d_left < np.inf or d_right < np.inf):
                node = -1  # both squared distances overflowed
                break
            node = left if d_left <= d_right else right
        out[row] = leaf_value[node] if node >= 0 else -1


@njit(cache=True, nogil=True)
def group_rows(labels, n_groups):
    """Counting sort: ``order`` lists the rows of group 0, then group 1, ...

    Returns ``order`` and ``offsets`` (``offsets[g]:offsets[g + 1]`` are group
    ``g``'s positions in ``order``); rows keep their order inside a group.
    """
    offsets = np.zeros(n_groups + 1, dtype=np.int64)
    for label in labels:
        offsets[label + 1] += 1
    for g in range(n_groups):
        offsets[g + 1] += offsets[g]
    fill = offsets[:-1].copy()
    order = np.empty(labels.shape[0], dtype=np.int64)
    for row in range(labels.shape[0]):
        g = labels[row]
        order[fill[g]] = row
        fill[g] += 1
    return order, offsets
