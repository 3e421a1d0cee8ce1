"""deploy/run-without-containers as a module: how it reads compose.yaml is how the tests read it."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "deploy" / "run-without-containers"


def runner() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("run_without_containers", str(RUNNER))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
