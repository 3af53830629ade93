"""Vocoder tests run torch on one thread.

The step loop makes thousands of tiny parallel regions; on a shared 2-core machine a
descheduled OpenMP worker stalls each of them (observed: 20-50x slower). One thread keeps
the tests' run time stable; the numbers do not depend on it beyond float rounding.
"""
import pytest


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread(one_torch_thread):
    with one_torch_thread():
        yield
