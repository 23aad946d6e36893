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
MANIFEST = VENDOR / "SHA256SUMS"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check() -> list[str]:
    """What is wrong with the vendored files (empty: nothing)."""
    if not MANIFEST.is_file():
        return [f"{MANIFEST} is missing"]
    expected = dict(line.split("  ")[::-1] for line in MANIFEST.read_text().splitlines() if line)
    problems = [f"{name}: not in the manifest" for name in FILES if name not in expected]
    for name, digest in expected.items():
        path = VENDOR / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256(path) != digest:
            problems.append(f"{name}: sha256 differs from the manifest")
    return problems


def fetch() -> None:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=folder, check=True, stdout=subprocess.DEVNULL)
        with tarfile.open(Path(folder) / f"{PACKAGE}-{VERSION}.tgz") as archive:
            for name in FILES:
                (VENDOR / name).write_bytes(archive.extractfile(f"package/dist/{name}").read())
    MANIFEST.write_text("".join(f"{sha256(VENDOR / name)}  {name}\n" for name in FILES))
    print(f"{PACKAGE}@{VERSION}: {', '.join(FILES)} in {VENDOR.relative_to(ROOT)}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the vendored files against SHA256SUMS")
    args = parser.parse_args(argv)
    if not args.check:
        fetch()
    problems = check()
    if problems:
        sys.exit("vendored runtime: " + "; ".join(problems))
    print("vendored runtime matches SHA256SUMS")


if __name__ == "__main__":
    main()
