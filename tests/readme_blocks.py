"""The code blocks of README.md, as the tests run or check them (see README: "The code blocks
in this README are tested")."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(\w+)(?: +([\w-]+))?\n(.*?)^```$", re.M | re.S)
# A fence's second word: why the block is checked instead of run, or where it runs.
MARKERS = {
    None: "runs in tests/test_readme.py",
    "app": "runs in tests/test_app.py against the running app",
    "needs-network": "checked: needs the package registries or the Hub",
    "needs-data": "checked: needs CelebA and hours of CPU",
}


@dataclass
class Block:
    language: str
    marker: str | None
    code: str
    line: int

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.language} {self.marker or ''})"


def readme_blocks(path: Path = README) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [Block(m.group(1), m.group(2), m.group(3), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]
