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


def pytest_collection_modifyitems(config, items):
    # SYMFOCAL_TEST_SHARD=k/n (scripts/pytest_shards.py): this process runs every n-th test from
    # the k-th, so that n processes share a suite whose tests use one core each (the emulated CUDA
    # kernels). Round-robin over the collection order spreads a test's parametrizations over all.
    shard = os.environ.get("SYMFOCAL_TEST_SHARD")
    if not shard:
        return
    k, n = (int(part) for part in shard.split("/"))
    config.hook.pytest_deselected(items=[item for index, item in enumerate(items) if index % n != k])
    items[:] = [item for index, item in enumerate(items) if index % n == k]
