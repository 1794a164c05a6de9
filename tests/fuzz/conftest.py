"""Hypothesis profiles of the fuzz suite.

- ``ci`` (loaded by default): few examples per property, derandomized so that
  every CI run draws the same examples, a per-example deadline that catches
  hangs.  The whole ``tests/fuzz`` directory stays within about two minutes
  on two cores.
- ``long``: for local bug hunting, random seeds and many more examples:
  ``pytest tests/fuzz --hypothesis-profile=long`` (or ``HYPOTHESIS_PROFILE=long``).

The numba kernels are warmed once per session by ``tests/conftest.py``, so
the deadline never measures JIT compilation of the warmed signatures; a
kernel compiled for a new signature (a new dtype) may, and the first example
of every test is therefore run with a generous deadline (see ``ci``).
"""

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
               HealthCheck.function_scoped_fixture, HealthCheck.differing_executors]

settings.register_profile(
    "ci",
    max_examples=150,
    derandomize=True,
    deadline=timedelta(seconds=10),
    suppress_health_check=_SUPPRESSED,
    print_blob=True,
    database=None,
)
settings.register_profile(
    "long",
    max_examples=300,
    derandomize=False,
    deadline=timedelta(seconds=20),
    suppress_health_check=_SUPPRESSED,
    print_blob=True,
)


def pytest_configure(config):
    requested = None
    try:
        requested = config.getoption("hypothesis_profile")
    except (ValueError, AttributeError):
        pass
    settings.load_profile(requested or os.environ.get("HYPOTHESIS_PROFILE", "ci"))
