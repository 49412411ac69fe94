"""The end-to-end suite needs Docker and kind; it fails loudly without them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kind_cluster import Cluster, Tools, missing_tools


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    absent = missing_tools()
    if absent:
        pytest.fail(f"the e2e suite needs {', '.join(absent)} on PATH (see e2e/README.md)")
    kind = Cluster(Tools.unpack())
    kind.create()
    kind.build_and_load_images()
    kind.install_chart()
    yield kind
    if os.environ.get("E2E_KEEP_CLUSTER") != "1":
        kind.delete()
