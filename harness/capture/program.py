"""What the tracemalloc probe runs: a Python program named by a command line, checked, then run in this process.

``parse_program`` reads ``-m MODULE ...``, ``path/to/script.py ...`` or ``python`` followed by either (the
launcher calls it to decide whether a ``--launch`` command can run under the probe); ``run_program`` runs it
through ``runpy`` with the ``sys.argv`` it expects.
"""

from __future__ import annotations

import importlib.util
import os
import re
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.errors import UsageError

__all__ = ["Program", "check_module", "parse_program", "run_program"]

_PYTHON_WORD = re.compile(r"^python(\d+(\.\d+)?)?$")
_HARMLESS_PYTHON_OPTIONS = {"-u", "-B"}


class Program:
    """What to run: a module (``-m``) or a script path, and the ``sys.argv`` it expects after argv[0]."""

    __slots__ = ("args", "kind", "target")

    def __init__(self, kind: str, target: str, args: Sequence[str]) -> None:
        self.kind = kind
        """'module' or 'script'."""
        self.target = target
        self.args = list(args)

    def __repr__(self) -> str:
        return f"Program({self.kind!r}, {self.target!r}, {self.args!r})"


def _not_python(command: Sequence[str], why: str) -> UsageError:
    shown = " ".join(command)
    return UsageError(
        f"{shown!r} is not a Python program the probe can run ({why}); expected '-m MODULE ...', "
        "'path/to/script.py ...', or 'python' followed by either"
    )


def _has_python_shebang(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            first = file.readline(256)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def parse_program(command: Sequence[str]) -> Program:
    """``["python", "-m", "targets.eager", "--port", "0"]`` -> Program('module', 'targets.eager', [...]).

    Raises UsageError for anything that is not a Python program (``node server.js``, a missing file).
    """
    words = list(command)
    if words and words[0] == "--":
        words = words[1:]
    command = list(words)
    if not words:
        raise UsageError("harness probe needs a command after '--', e.g. -- python -m targets.eager --port 0")
    first = words[0]
    if _PYTHON_WORD.match(Path(first).name) or first == sys.executable:
        words = words[1:]
        while words and words[0] in _HARMLESS_PYTHON_OPTIONS:
            words = words[1:]
        if not words:
            raise _not_python(command, "an interactive interpreter is not a program")
        if words[0].startswith("-") and words[0] != "-m":
            raise _not_python(command, f"python option {words[0]!r} is not supported under the probe")
    if words[0] == "-m":
        if len(words) < 2:
            raise _not_python(command, "'-m' needs a module name")
        return Program("module", words[1], words[2:])
    path = Path(words[0])
    if not path.is_file():
        why = "no such file" if path.suffix in (".py", ".pyw") or os.sep in words[0] else "not a Python file"
        raise _not_python(command, f"{words[0]!r}: {why}")
    if path.suffix not in (".py", ".pyw") and not _has_python_shebang(path):
        raise _not_python(command, f"{words[0]!r} is neither a .py file nor a python script")
    return Program("script", words[0], words[1:])


def check_module(name: str, command: Sequence[str]) -> None:
    """UsageError naming ``command`` when module ``name`` cannot be found."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as error:
        raise _not_python(command, f"cannot find module {name!r}: {error}") from error
    if spec is None:
        raise _not_python(command, f"no module named {name!r}")


def run_program(program: Program) -> None:
    """Run ``program`` here as ``__main__``, as ``python -m`` or ``python script.py`` would."""
    if program.kind == "module":
        sys.argv = [program.target, *program.args]  # runpy sets argv[0] to the module's file
        runpy.run_module(program.target, run_name="__main__", alter_sys=True)
    else:
        script = Path(program.target).resolve()  # __main__.__file__ is absolute, as under `python script.py`
        sys.argv = [program.target, *program.args]
        sys.path[0] = str(script.parent)
        runpy.run_path(str(script), run_name="__main__")
