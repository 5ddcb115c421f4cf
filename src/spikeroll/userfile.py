"""Importing a Python file that the user named on the command line (`--model FILE.py:FACTORY`,
`--fitness FILE.py:FN`): the one place where spikeroll runs code from a file. Anything the file
raises becomes one line naming the file and the line."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from spikeroll.errors import SpikerollError


def raised(exc: BaseException, file: Path, what: str, option: str) -> SpikerollError:
    """A one-line error for an exception from the user's file: where in the file (the traceback's last
    frame inside it, or a SyntaxError's own line) and the exception's first line."""
    line = None
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename).resolve() == file.resolve():
        line = exc.lineno
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == file.resolve():
            line = frame.lineno
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
    where = f"{file}:{line}" if line else f"{file}"
    return SpikerollError(f"{option} {where}: {what} raised {detail}; fix the file")


def import_named(spec: str, option: str, kind: str, example: str) -> tuple[Callable, Path]:
    """'path/to/file.py:NAME' -> (the callable NAME of that file, the file). Importing runs the user's
    code. `option` (e.g. --model), `kind` (FACTORY, FN) and `example` word the errors."""
    path, sep, name = str(spec).rpartition(":")
    if not sep or not path or not name:
        raise SpikerollError(f"{option} {spec!r} must be FILE.py:{kind}, e.g. {example}")
    file = Path(path)
    try:
        exists = file.is_file()
    except (OSError, ValueError):  # a name the OS cannot look up (a NUL byte, too long)
        exists = False
    if not exists:
        raise SpikerollError(f"{option} file {path!r} does not exist; give the path of a .py file defining {name}()")
    module_name = f"spikeroll_user_{option.strip('-')}_{abs(hash(file.resolve()))}"
    loader = importlib.util.spec_from_file_location(module_name, file)
    if loader is None or loader.loader is None:
        raise SpikerollError(f"{option} {file} is not a Python file; give FILE.py:{kind}")
    code = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = code  # dataclasses and pickling look their module up here
    try:
        loader.loader.exec_module(code)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code may raise anything
        sys.modules.pop(module_name, None)
        raise raised(exc, file, "importing it", option) from None
    function = getattr(code, name, None)  # the user's function, by the name they gave after the colon
    if not callable(function):
        raise SpikerollError(f"{option} {file} defines no function {name!r}; name it after the colon")
    return function, file
