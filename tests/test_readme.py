"""Every code block of README.md and docs/*.md runs here, or, where it needs the network, the
data or hours, is checked: its Python compiles and every command, subcommand and --flag it uses
exists. And the README stays short, with its picture, its links and the docs it points to."""
from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from fake_hub import hub_environment
from in_process import run_module
from readme_blocks import DOCUMENTS, MARKERS, README, ROOT, readme_blocks

BLOCKS = readme_blocks()
CHECKED = [b for b in BLOCKS if b.marker in ("needs-network", "needs-data", "by-hand")]
README_LIMIT = 12_000  # characters: read in two minutes; the studies live in docs/


def test_every_block_is_python_or_bash_and_says_how_it_is_tested():
    assert len(BLOCKS) >= 5 and {README} < {b.document for b in BLOCKS}  # docs/ has blocks too
    for block in BLOCKS:
        assert block.language in ("python", "bash"), block
        assert block.marker in MARKERS, f"{block}: unknown marker {block.marker!r}"
    assert any(b.marker is None for b in BLOCKS) and any(b.marker == "app" for b in BLOCKS)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.marker is None], ids=str)
def test_runnable_blocks_run(block, tmp_path, monkeypatch):
    """Each runs as its own __main__ in this process (a process of its own would import torch again),
    in a folder of its own, offline and without $FACEVAE_MODEL."""
    assert block.language == "python", f"{block}: only Python blocks run as they are"
    (tmp_path / "assets").symlink_to(ROOT / "assets")  # the README's paths are relative to the repository
    monkeypatch.chdir(tmp_path)
    with hub_environment(HF_HUB_OFFLINE="1", FACEVAE_MODEL=None):
        exec(compile(block.code, str(block), "exec"), {"__name__": "__main__"})


@functools.cache
def help_text(*command: str) -> str:
    """What `command --help` prints; an assertion error if the command does not exist. `python -m`
    runs in this process (in_process: a process would cost Python's start and torch's import);
    `python app.py` does not (Gradio reads the source of the components a __main__ defines, which
    runpy's __main__ has none of)."""
    if command[:2] == (sys.executable, "-m"):
        result = run_module(command[2], *command[3:], "--help", check=False)
    else:
        result = subprocess.run([*command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, f"{' '.join(command)} --help failed: {result.stderr[-1000:]}"
    return result.stdout


def flags(words: list[str]) -> list[str]:
    return [w.split("=")[0] for w in words if w.startswith("--")]


def check_command(words: list[str]) -> None:
    program, args = words[0], words[1:]
    if program == "pip":
        assert args[:2] == ["install", "-r"] and (ROOT / args[2]).is_file() or args == ["install", "."], words
    elif program in (".", "source"):  # a venv's activation, made by `python -m venv .venv` just before
        assert args == [".venv/bin/activate"], words
    elif program == "python" and args[0] == "-c":
        compile(args[1], "<python -c>", "exec")
    elif program == "python" and args[:2] == ["-m", "pytest"]:
        assert shutil.which("pytest") or help_text(sys.executable, "-m", "pytest")
    elif program == "python":
        target = args[:2] if args[0] == "-m" else args[:1]
        text = help_text(sys.executable, *target)
        missing = [f for f in flags(args[len(target):]) if f not in text]
        assert not missing, f"{' '.join(words)}: no such options {missing}"
    elif program == "torchrun":
        split = args.index("-m")
        assert not [f for f in flags(args[:split]) if f not in help_text("torchrun")]
        check_command(["python", *args[split:]])
    elif program == "hf":
        subcommand = [w for w in args[:2] if not w.startswith(("-", "<"))]
        text = help_text("hf", *subcommand)
        assert not [f for f in flags(args) if f not in text], words
    else:
        assert shutil.which(program), f"{program}: no such command"


def commands(code: str) -> list[list[str]]:
    """Each command of a shell block as words: continuations joined, comments dropped."""
    lines = code.replace("\\\n", " ").splitlines()
    return [words for line in lines for part in line.split("&&") if (words := shlex.split(part, comments=True))]


def test_ci_runs_the_readme_setup_in_a_fresh_venv():
    setup = next(b for b in BLOCKS if b.document == README)
    def quiet_or_not(words: list[str]) -> list[str]:  # CI may run a command with -q
        return [w for w in words if w != "-q"]

    ci = [quiet_or_not(words) for words in commands((ROOT / ".ci" / "run").read_text())]
    wanted = [quiet_or_not(words) for words in commands(setup.code) if words[:2] != ["python", "app.py"]]
    assert ["python", "-m", "venv", ".venv"] in wanted and [".", ".venv/bin/activate"] in wanted
    assert all(command in ci for command in wanted), "a command of the README's setup is not in .ci/run"
    assert [ci.index(command) for command in wanted] == sorted(ci.index(command) for command in wanted)


@pytest.mark.parametrize("block", CHECKED, ids=str)
def test_checked_blocks_use_only_commands_and_options_that_exist(block):
    if block.language == "python":
        compile(block.code, str(block), "exec")
        return
    for words in commands(block.code):
        check_command(["python", *words[1:]] if words[0] == sys.executable else words)


def test_the_checker_catches_a_wrong_flag():
    with pytest.raises(AssertionError, match="no such options"):
        check_command(["python", "-m", "train.publish", "--model-repo", "a/b", "--no-such-flag"])
    with pytest.raises(AssertionError):
        check_command(["hf", "no-such-subcommand"])


def test_the_readme_is_short_and_opens_with_its_picture():
    text = README.read_text(encoding="utf-8")
    assert len(text) <= README_LIMIT, f"README.md has {len(text):,} characters; move the details into docs/"
    first = re.search(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert first and text.index(first.group(0)) < text.index("\n## "), "the README opens with a picture"
    picture = ROOT / first.group(1)
    assert picture.is_file() and picture.stat().st_size < 1_000_000


def relative_links(path):
    """The targets of the document's Markdown links and images that point into the repository."""
    targets = re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8"))
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file(document):
    missing = [t for t in relative_links(document) if not (document.parent / t).exists()]
    assert not missing, f"{document.name}: broken links {missing}"


def test_the_readme_links_every_doc_and_the_model_card():
    linked = {(ROOT / t).resolve() for t in relative_links(README)}
    assert (ROOT / "assets/facevae-celeba-128/README.md").resolve() in linked
    assert not [p.name for p in DOCUMENTS[1:] if p.resolve() not in linked], "docs/ files the README does not link"
