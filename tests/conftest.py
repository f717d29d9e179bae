import os
import zlib

import pytest
import torch

import symfocal

# tests/smoke runs against an installed wheel, from outside the tree (scripts/wheel_check.sh).
collect_ignore = ["smoke"]


def pytest_report_header(config):
    from symfocal import _ops
    return f"symfocal build: {_ops.build_info()}; torch {torch.__version__}, {torch.get_num_threads()} threads"


@pytest.fixture(autouse=True)
def _fresh_seed(request):
    # A different seed per test, the same on every run (a failure reproduces);
    # SYMFOCAL_TEST_SEED draws other inputs.
    seed = zlib.crc32(request.node.nodeid.encode()) ^ int(os.environ.get("SYMFOCAL_TEST_SEED", "0"))
    torch.manual_seed(seed)
    yield


@pytest.fixture(scope="session", autouse=True)
def _extension_is_built():
    assert symfocal.extension_available(), "the compiled extension did not load: build it (make build)"
