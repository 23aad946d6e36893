"""The code blocks of README.md and docs/*.md, as the tests run or check them (see README:
"Every code block here and in docs/ is tested")."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)(?: +([\w-]+))?\n(.*?)^```$", re.M | re.S)
# A fence's second word: why the block is checked instead of run, or where it runs.
MARKERS = {
    None: "runs in tests/test_readme.py",
    "app": "runs in tests/test_app.py against the running app",
    "needs-network": "checked: needs the package registries or the Hub",
    "needs-data": "checked: needs CelebA and hours of CPU",
    "by-hand": "checked: a measurement run by hand (minutes of a quiet CPU, or it rewrites shipped files)",
}


@dataclass
class Block:
    document: Path
    language: str
    marker: str | None
    code: str
    line: int

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line} ({self.language} {self.marker or ''})"


def readme_blocks(documents: list[Path] = DOCUMENTS) -> list[Block]:
    """Every fenced block of the documents (README.md and docs/*.md unless told)."""
    blocks = []
    for path in documents:
        text = path.read_text(encoding="utf-8")
        blocks += [Block(path, m.group(1), m.group(2), m.group(3), text.count("\n", 0, m.start()) + 1)
                   for m in FENCE.finditer(text)]
    return blocks
