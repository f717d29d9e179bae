import pytest
import torch

import symfocal


def pytest_report_header(config):
    from symfocal import _ops
    return f"symfocal build: {_ops.build_info()}; torch {torch.__version__}, {torch.get_num_threads()} threads"


@pytest.fixture(autouse=True)
def _fresh_seed(request):
    # A different, reproducible seed per test: fresh random inputs, not one fixed draw.
    seed = abs(hash(request.node.nodeid)) % (2**31)
    torch.manual_seed(seed)
    yield


@pytest.fixture(scope="session", autouse=True)
def _extension_is_built():
    assert symfocal.extension_available(), "the compiled extension did not load: build it (make build)"
