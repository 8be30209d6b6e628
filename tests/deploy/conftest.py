"""The chart's renders, made once for the tier (each ``helm template`` takes seconds)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from deploy import render


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    """Each value set's ``helm template`` output (deploy.render.VALUE_SETS)."""
    render.tool("helm")  # installed once, before the renders run side by side
    with ThreadPoolExecutor(max_workers=len(render.VALUE_SETS)) as pool:
        texts = pool.map(render.render, render.VALUE_SETS)
        return dict(zip(render.VALUE_SETS, texts, strict=True))
