"""Shared test helpers."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def benchmark_script():
    """Loads benchmarks/NAME.py as a module (the scripts are not part of the installed package)."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def pytest_terminal_summary(terminalreporter):
    """The attack suite's size: each attack test module keeps the crafted inputs it tried in a
    module-level list CRAFTED_INPUTS; the run ends by saying how many were tried."""
    import sys

    counts = {name: len(module.CRAFTED_INPUTS) for name, module in sorted(sys.modules.items())
              if name.split(".")[-1].startswith(("test_attack", "test_fuzz")) and hasattr(module, "CRAFTED_INPUTS")}
    if counts:
        detail = ", ".join(f"{name.split('.')[-1]} {n}" for name, n in counts.items())
        terminalreporter.write_line(f"attack suite: {sum(counts.values())} crafted inputs tried ({detail})")
