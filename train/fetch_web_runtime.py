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


def require_cached(path: Path, digest: str, how_to_make: str) -> None:
    """A cached file that is missing, or not byte for byte the pinned one, is refused
    (FileNotFoundError, RuntimeError) with how_to_make in the message."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {how_to_make}")
    if sha256(path) != digest:
        raise RuntimeError(f"{path}: sha256 is not the pinned {digest[:12]}…: {how_to_make}")


def exit_unless_cached(path: Path, digest: str, how_to_make: str) -> None:
    """require_cached for a command's last check: its message and exit status 1, not a traceback."""
    try:
        require_cached(path, digest, how_to_make)
    except (FileNotFoundError, RuntimeError) as error:
        sys.exit(str(error))


def npm_pack(spec: str, tarball: str, folder: Path, digest: str | None = None) -> Path:
    """npm pack spec into folder, its sha256 checked when pinned (a changed tarball is never used);
    the tarball."""
    subprocess.run(["npm", "pack", spec, "--silent"], cwd=folder, check=True, stdout=subprocess.DEVNULL)
    path = folder / tarball
    if digest is not None and sha256(path) != digest:
        sys.exit(f"{tarball}: sha256 {sha256(path)} is not the expected {digest}; not used")
    return path


def npm_package(spec: str, tarball: str, folder: Path, digest: str) -> Path:
    """npm_pack, pinned, extracted into folder (tarfile's "data" filter: nothing lands outside it);
    the package folder."""
    with tarfile.open(npm_pack(spec, tarball, folder, digest)) as archive:
        archive.extractall(folder, filter="data")
    return folder / "package"


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
        with tarfile.open(npm_pack(f"{PACKAGE}@{VERSION}", f"{PACKAGE}-{VERSION}.tgz", Path(folder))) as archive:
            for name in FILES:
                (VENDOR / name).write_bytes(archive.extractfile(f"package/dist/{name}").read())
    write_manifest(VENDOR, FILES)
    print(f"{PACKAGE}@{VERSION}: {', '.join(FILES)} in {VENDOR.relative_to(ROOT)}")


def main(argv=None) -> None:
    vendor_main(argv, __doc__, fetch, check, "the vendored runtime's files")


if __name__ == "__main__":
    main()
