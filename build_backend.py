"""The build backend: setuptools' own, after a check that this Python has a setuptools that
can build symfocal. With --no-build-isolation (which a torch extension needs) the build uses
the setuptools of the user's environment, and Python 3.12's venv comes with none."""

import re
import sys

MINIMUM = (64, 0)  # editable installs (PEP 660)
FIX = "python -m pip install --upgrade 'setuptools>=64' wheel"

try:
    import setuptools
except ImportError:
    sys.exit(f"symfocal: building needs setuptools >= 64, and this Python has none. Fix: {FIX}")
_found = tuple(int(n) for n in re.findall(r"\d+", setuptools.__version__)[:2])
if _found < MINIMUM:
    sys.exit(f"symfocal: building needs setuptools >= 64, found {setuptools.__version__}. Fix: {FIX}")
if _found < (70, 1):  # bdist_wheel moved into setuptools in 70.1
    try:
        import wheel  # noqa: F401
    except ImportError:
        sys.exit(f"symfocal: building with setuptools {setuptools.__version__} needs the wheel package. Fix: {FIX}")

from setuptools.build_meta import *  # noqa: E402,F401,F403
