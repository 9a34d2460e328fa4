"""The README shows the two commands and the current source contracts."""

from __future__ import annotations

from overblik.features._contracts import contracts_markdown
from tests.conftest import ROOT


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    head = text[: text.index("## ")]
    assert "make demo" in head and "make test" in head


def test_readme_contracts_are_the_code_contracts() -> None:
    text = (ROOT / "README.md").read_text()
    begin, end = "<!-- contracts:begin -->\n", "<!-- contracts:end -->"
    block = text[text.index(begin) + len(begin): text.index(end)]
    assert block.strip() == contracts_markdown().strip(), (
        "README contracts are out of date: run `overblik contracts` and paste the output "
        "between the contracts markers"
    )


def test_readme_explains_every_quarantine_reason() -> None:
    from overblik.features._validation import REASON_KINDS

    text = (ROOT / "README.md").read_text()
    for code in REASON_KINDS:
        assert f"`{code}" in text, f"README does not explain quarantine reason {code}"
