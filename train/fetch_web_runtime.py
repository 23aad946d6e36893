"""Re-fetch the vendored ONNX Runtime Web files from npm, or check them against their manifest.

    python -m train.fetch_web_runtime          # npm pack onnxruntime-web@VERSION, copy FILES, write SHA256SUMS
    python -m train.fetch_web_runtime --check  # the vendored files match SHA256SUMS (no network)

The app serves these files itself (no CDN), so a fresh clone runs after `pip install` alone.
To move to another release, change VERSION, run this, and run the browser tests.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "facevae" / "web" / "vendor" / "onnxruntime-web"
PACKAGE, VERSION = "onnxruntime-web", "1.30.0"
# The WASM build only: its ES module, the Emscripten glue it imports and the SIMD binary (the
# same binary runs with one thread or several). LICENSE (MIT) is kept beside them by hand: the
# npm package carries none, and it is the onnxruntime project's.
FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_manifest(vendor: Path, files: list[str]) -> list[str]:
    """What is wrong with a vendored folder's files against its SHA256SUMS (empty: nothing)."""
    manifest = vendor / "SHA256SUMS"
    if not manifest.is_file():
        return [f"{manifest} is missing"]
    expected = dict(line.split("  ")[::-1] for line in manifest.read_text().splitlines() if line)
    problems = [f"{name}: not in the manifest" for name in files if name not in expected]
    for name, digest in expected.items():
        path = vendor / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256(path) != digest:
            problems.append(f"{name}: sha256 differs from the manifest")
    return problems


def write_manifest(vendor: Path, files: list[str]) -> None:
    (vendor / "SHA256SUMS").write_text("".join(f"{sha256(vendor / name)}  {name}\n" for name in files))


def vendor_main(argv, description: str, make, check, what: str) -> None:
    """A vendoring tool's command line: make() the files (unless --check), then check() them."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the vendored files against SHA256SUMS")
    args = parser.parse_args(argv)
    if not args.check:
        make()
    problems = check()
    if problems:
        sys.exit(f"{what}: " + "; ".join(problems))
    print(f"{what} match SHA256SUMS")


def check() -> list[str]:
    """What is wrong with the vendored runtime (empty: nothing)."""
    return check_manifest(VENDOR, FILES)


def fetch() -> None:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=folder, check=True, stdout=subprocess.DEVNULL)
        with tarfile.open(Path(folder) / f"{PACKAGE}-{VERSION}.tgz") as archive:
            for name in FILES:
                (VENDOR / name).write_bytes(archive.extractfile(f"package/dist/{name}").read())
    write_manifest(VENDOR, FILES)
    print(f"{PACKAGE}@{VERSION}: {', '.join(FILES)} in {VENDOR.relative_to(ROOT)}")


def main(argv=None) -> None:
    vendor_main(argv, __doc__, fetch, check, "the vendored runtime's files")


if __name__ == "__main__":
    main()
