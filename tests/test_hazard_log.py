"""The hazard log and the security page name real tests: every `tests/FILE.py::test_name` they cite
exists in that file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "docs" / "safety" / "hazard-log.md"
SECURITY = REPO / "docs" / "security.md"
CITED = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def names_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test_")
    }


@pytest.mark.parametrize(
    ("page", "fewest", "too_few"),
    [
        pytest.param(LOG, 19, "the log cites too few tests to be the hazard log", id="hazard-log"),
        pytest.param(SECURITY, 15, "the security page cites too few tests to be the threat model", id="security"),
    ],
)
def test_every_test_a_page_names_exists(page: Path, fewest: int, too_few: str) -> None:
    cited = CITED.findall(page.read_text())
    assert len(cited) >= fewest, too_few
    missing = [
        f"{file}::{name}" for file, name in cited if not (REPO / file).exists() or name not in names_in(REPO / file)
    ]
    assert missing == [], f"{page.relative_to(REPO)} names tests that do not exist: {missing}"


def test_every_hazard_has_a_control_or_says_it_is_open() -> None:
    rows = [line for line in LOG.read_text().splitlines() if re.match(r"\| H\d\d \|", line)]
    assert len(rows) >= 19
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        control, tests, status = cells[7], cells[8], cells[10]
        assert "open" in status or (CITED.search(tests) and control != "none yet"), row


def test_the_check_would_catch_a_renamed_test(tmp_path: Path) -> None:
    """The control: a citation of a test that is not there is found."""
    fake = tmp_path / "test_x.py"
    fake.write_text("def test_here() -> None:\n    pass\n")
    assert names_in(fake) == {"test_here"}
    assert "test_gone" not in names_in(fake)
