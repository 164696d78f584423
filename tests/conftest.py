"""Fixtures the test files share."""

import os
import re

import pytest


@pytest.fixture
def name(request):
    """A shared-memory segment name unique to this test (and process), removed
    from /dev/shm afterwards."""
    n = "fhtest-%d-%s" % (os.getpid(), re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60])
    yield n
    try:
        os.unlink("/dev/shm/" + n)
    except FileNotFoundError:
        pass
