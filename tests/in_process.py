"""`python -m module args` run inside the test process: its exit status and what it prints, as its
own process would give them, without a Python start and the imports of torch and the project (about
4 s of CPU, 8 s on this 2-core machine with a training run beside it, per command). The tests that
need a process of its own start one: a run that is killed, torchrun's workers, and code that reads
its environment at import (huggingface_hub's HF_ENDPOINT)."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import runpy
import subprocess
import sys
import warnings

import torch


def run_module(module: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m module *args` in this process. stdout and stderr are captured (a message passed to
    sys.exit goes to stderr with status 1, as Python prints it; warnings logged go to stderr, as
    Python's last-resort handler prints them); torch's thread count, grad mode and deterministic
    mode, which a command may set for its whole process, are restored. check: raise AssertionError
    with the output if the status is not 0."""
    spec = module_spec(module)
    if spec is None:
        return finish(subprocess.CompletedProcess([sys.executable, "-m", module, *map(str, args)], 1, "",
                                                  f"{sys.executable}: No module named {module}\n"), check)
    argv = [spec.origin, *map(str, args)]
    stdout, stderr = io.StringIO(), io.StringIO()
    logged = logging.StreamHandler(stderr)
    logged.setLevel(logging.WARNING)
    root = logging.getLogger()
    threads, grad = torch.get_num_threads(), torch.is_grad_enabled()
    deterministic = torch.are_deterministic_algorithms_enabled()
    saved_argv, status = sys.argv, 0
    root.addHandler(logged)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), warnings.catch_warnings():
            # runpy's note that the module was imported before (by this or an earlier test)
            warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)
            sys.argv = argv
            try:
                runpy.run_module(module, run_name="__main__")
            except SystemExit as stopped:
                status = exit_status(stopped)
    finally:
        sys.argv = saved_argv
        root.removeHandler(logged)
        torch.set_num_threads(threads)
        torch.set_grad_enabled(grad)
        torch.use_deterministic_algorithms(deterministic)
    return finish(subprocess.CompletedProcess([sys.executable, "-m", module, *argv[1:]], status, stdout.getvalue(),
                                              stderr.getvalue()), check)


def module_spec(module: str):
    try:
        return importlib.util.find_spec(module)
    except ModuleNotFoundError:  # its package is missing
        return None


def finish(result: subprocess.CompletedProcess, check: bool) -> subprocess.CompletedProcess:
    if check and result.returncode != 0:
        raise AssertionError(result.stdout + result.stderr)
    return result


def exit_status(stopped: SystemExit) -> int:
    """The status a process ends with on this SystemExit; a message is printed to stderr, as Python does."""
    if stopped.code is None or isinstance(stopped.code, int):
        return stopped.code or 0
    print(stopped.code, file=sys.stderr)
    return 1
