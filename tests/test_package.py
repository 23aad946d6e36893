"""The repository as a package: `pip install .` gives a facevae that imports and loads its
weights from anywhere, its dependencies are requirements.txt's, and no module imports one that
imports it back."""
from __future__ import annotations

import ast
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEFT_BEHIND = shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", ".cache", ".pytest_cache")


def requirement_lines(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    """A fresh venv with a copy of the repository installed into it (--no-deps), on top of the
    dependencies installed here. The wheel is built by the interpreter running the tests, with
    its setuptools (--no-build-isolation: nothing is downloaded); the venv sees this
    interpreter's packages through a .pth file. A venv's --system-site-packages would be the
    *base* interpreter's instead when the tests themselves run in a venv, with an old setuptools
    and without torch."""
    tmp = tmp_path_factory.mktemp("package")
    source, wheels = tmp / "source", tmp / "wheels"
    shutil.copytree(ROOT, source, ignore=LEFT_BEHIND)  # an in-tree build writes build/ beside the sources
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                             "--no-index", "-w", wheels, source], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp / "venv"], check=True, timeout=120)
    python = tmp / "venv" / "bin" / "python"
    own_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              capture_output=True, text=True, check=True).stdout.strip()
    Path(own_site, "tested-interpreter.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    result = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", *wheels.glob("*.whl")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return python


def run_elsewhere(python: Path, code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FACEVAE_MODEL")}
    result = subprocess.run([python, "-c", code], cwd=cwd, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_installed_package_imports_from_another_folder_and_loads_its_weights(venv_python, tmp_path):
    code = """
import facevae, torch
from facevae import load_model, to_image
from facevae.align import TEMPLATE_FILE
model = load_model()
faces = model.sample(2, prior="mixture", generator=torch.Generator().manual_seed(0))
to_image(faces[0]).save("face.png")
print(facevae.__file__, TEMPLATE_FILE.is_file(), model.source, len(model.latent_stats.attribute_names), sep="\\n")
"""
    # the last four lines (huggingface_hub prints where it loads from)
    where, template, source, attributes = run_elsewhere(venv_python, code, tmp_path).splitlines()[-4:]
    assert Path(where).is_relative_to(venv_python.parent.parent) and not Path(where).is_relative_to(ROOT)
    assert template == "True" and source.startswith("bundled weights") and int(attributes) >= 4
    assert (tmp_path / "face.png").stat().st_size > 1000


def test_the_package_depends_on_requirements_txt_exactly(venv_python, tmp_path):
    code = "from importlib.metadata import requires\nprint(*requires('facevae'), sep='\\n')"
    declared = run_elsewhere(venv_python, code, tmp_path).splitlines()
    assert sorted(declared) == sorted(requirement_lines(ROOT / "requirements.txt"))


def local_imports(path: Path, package: str, modules: set[str]) -> set[str]:
    """The `modules` that `path`, a module of `package`, imports (imports inside functions count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from .data import x` in facevae is facevae.data
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def project_modules() -> dict[str, Path]:
    files = [p for folder in ("facevae", "train") for p in (ROOT / folder).rglob("*.py")]
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, as the path from a module back to itself (depth-first search)."""
    found, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            if target in path:
                found.append(path[path.index(target):] + [target])
            elif target not in done:
                visit(target, path + [target])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    # a package's own __init__ is what `from package import x` runs, not a cycle with x
    return {name: local_imports(path, name if path.name == "__init__.py" else name.rpartition(".")[0], set(modules))
            - {name} for name, path in modules.items()}


def test_no_module_of_facevae_or_train_imports_one_that_imports_it_back():
    graph = import_graph()
    assert {"facevae.data", "train.attributes", "train.latent_stats", "train.studies.measure_age"} <= set(graph)
    assert "facevae.data" in graph["train.latent_stats"] and "facevae.preprocess" in graph["facevae.data"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    late = tmp_path / "late.py"
    late.write_text("def main():\n    from train.latent_stats import encode_all\n")
    assert local_imports(late, "train", {"train.latent_stats"}) == {"train.latent_stats"}
    relative = tmp_path / "relative.py"
    relative.write_text("from .data import encode_all\nfrom . import model\n")
    assert local_imports(relative, "facevae", {"facevae.data", "facevae.model"}) == {"facevae.data", "facevae.model"}
