"""Fixtures of the reporting suite: a store the real engine filled (see lifecycle_sim)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lifecycle_sim import CONFIG, Filled, fill

from apprentice import config as config_mod
from apprentice.store import open_store


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    root = tmp_path_factory.mktemp("reporting")
    path = root / "apprentice.yaml"
    path.write_text(CONFIG.format(db=root / "apprentice.db"), encoding="utf-8")
    cfg = config_mod.load(path)
    store = open_store(cfg.store.url)
    end = fill(store, cfg)
    yield Filled(cfg, path, store, 1200, end)
    store.close()
