"""Helpers for the skmoe documentation build.

This module is both a small Sphinx extension (listed in ``extensions`` in
``doc/conf.py``) and the home of the sphinx-gallery reset function, which is
referred to by its fully qualified name: Sphinx caches its configuration with
pickle, and functions defined in ``conf.py`` cannot be pickled.
"""

from docutils import nodes

import sklearn

# scikit-learn's global configuration as it is when the docs build starts; the
# set of keys depends on the scikit-learn version, so it is not hard-coded.
_SKLEARN_DEFAULT_CONFIG = sklearn.get_config()

_SKLEARN_DOCS = "https://scikit-learn.org/stable/"

# Labels and glossary terms of the scikit-learn documentation that are used by
# the docstrings of methods skmoe estimators inherit from scikit-learn
# (``score``, ``get_metadata_routing``, ``set_*_request``).  Offline, without
# the intersphinx inventory, they would be unresolved references; they are
# linked to the scikit-learn website instead.
_SKLEARN_TARGETS = {
    ("ref", "metadata_routing"): "metadata_routing.html",
    ("ref", "r2_score"): "modules/model_evaluation.html#r2-score",
    ("ref", "accuracy_score"): "modules/model_evaluation.html#accuracy-score",
    ("term", "meta-estimator"): "glossary.html#term-meta-estimator",
    ("term", "meta-estimators"): "glossary.html#term-meta-estimators",
}


def reset_sklearn_config(gallery_conf, fname):
    """Restore scikit-learn's global configuration before each example.

    An example that calls :func:`sklearn.set_config` (for instance to enable
    ``array_api_dispatch``) must not leak that setting into the next one.

    Parameters
    ----------
    gallery_conf : dict
        The sphinx-gallery configuration (unused).
    fname : str
        The example being run (unused).
    """
    sklearn.set_config(**_SKLEARN_DEFAULT_CONFIG)


def _resolve_sklearn_reference(app, env, node, contnode):
    """``missing-reference`` handler for the scikit-learn targets above.

    Runs after intersphinx (when it is enabled it resolves these targets
    itself), so it only fills in for offline builds.
    """
    if node.get("refdomain") != "std":
        return None
    target = " ".join(node.get("reftarget", "").lower().split())
    page = _SKLEARN_TARGETS.get((node.get("reftype"), target))
    if page is None:
        return None
    reference = nodes.reference(
        "", "", internal=False, refuri=_SKLEARN_DOCS + page, reftitle="(in scikit-learn)"
    )
    reference += contnode
    return reference


def setup(app):
    """Register the reference fallback with Sphinx."""
    # Priority > 500 so that intersphinx (default priority) is tried first.
    app.connect("missing-reference", _resolve_sklearn_reference, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
