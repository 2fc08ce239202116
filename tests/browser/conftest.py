"""One JupyterLab server for all browser tests (see labkit.py)."""

from __future__ import annotations

import pytest
from labkit import Lab, require_browser, run_lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Lab:
    """A JupyterLab server on 127.0.0.1; tests write the notebooks they open into ``lab.root``."""
    require_browser()
    with run_lab(tmp_path_factory.mktemp("lab")) as server:
        yield server
