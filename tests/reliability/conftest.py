"""The reliability suite: slow, fault and load tests; each records its figures for the summary."""

from typing import Dict, List, Tuple

import pytest

FIGURES: List[Tuple[str, Dict[str, object]]] = []


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if "reliability" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Dict[str, object]:
    """A dict the test fills with its figures; printed at the end of the run."""
    found: Dict[str, object] = {}
    FIGURES.append((request.node.name, found))
    return found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, found in FIGURES:
        if found:
            terminalreporter.write_line(f"{name}: " + ", ".join(f"{k} {v}" for k, v in found.items()))
