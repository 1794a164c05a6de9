"""numpydoc validation of the public API (in the spirit of sklearn's test_docstrings)."""

import inspect

import numpydoc.validate as numpydoc_validate
import pytest

import skmoe
import skmoe.amp
import skmoe.datasets
import skmoe.inspection
import skmoe.metrics
import skmoe.mixture
import skmoe.neural_network
import skmoe.utils

# Checks we do not enforce: summary layout details, See Also everywhere,
# Examples on every method, and parameters inherited from scikit-learn mixins.
IGNORED = {"GL01", "GL02", "SA01", "EX01", "ES01", "RT02", "PR02", "SS05", "GL08", "YD01"}


def _public_objects():
    for module in (
        skmoe,
        skmoe.amp,
        skmoe.datasets,
        skmoe.inspection,
        skmoe.metrics,
        skmoe.mixture,
        skmoe.neural_network,
        skmoe.utils,
    ):
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            yield f"{module.__name__}.{name}"
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if callable(member) and not attr.startswith("_"):
                        yield f"{module.__name__}.{name}.{attr}"


@pytest.mark.parametrize("import_path", sorted(_public_objects()))
def test_docstring(import_path):
    result = numpydoc_validate.validate(import_path)
    errors = [(code, msg) for code, msg in result["errors"] if code not in IGNORED]
    assert not errors, f"{import_path}: {errors}"
