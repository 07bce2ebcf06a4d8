"""Run tapestore's provider conformance suite from Python.

The suite is the C library ``libtapestore_conformance`` (tests/conformance,
docs/conformance.md), the same one the C providers pass; this module calls
its ``tape_conformance_run`` in-process through ctypes (which releases the
GIL), so a provider registered with :func:`tapestore.register_provider` is
tested through its trampolines::

    python3 -m tapestore.conformance PROVIDER CONFIG [--plugin FILE] [--only NAME]

``--plugin`` takes a Python file (imported first: it registers its
provider) or a C plugin library (``.so``). The library is found through
``$TAPE_CONFORMANCE_LIB``, then beside the ``libtapestore`` this package
uses, then on the loader's search path.
"""

import ctypes as _ct
import os as _os
import runpy as _runpy
import sys as _sys
from dataclasses import dataclass as _dataclass
from typing import Any, Callable, List, Optional

from . import capi as _c
from . import ERRORS, ConfigError, TapeError

__all__ = ["Report", "run", "case_names", "library", "main"]

_LIBNAME = "libtapestore_conformance.so"


@_dataclass(frozen=True)
class Report:
    """What a run found (TAP lines went to ``emit``)."""
    passed: int
    failed: int
    skipped: int

    @property
    def ok(self) -> bool:
        return self.failed == 0


class _CReport(_ct.Structure):
    _fields_ = [("version", _ct.c_uint), ("passed", _ct.c_int), ("failed", _ct.c_int),
                ("skipped", _ct.c_int)]


_EMIT = _ct.CFUNCTYPE(None, _ct.c_void_p, _ct.c_char_p)
_lib: Optional[_ct.CDLL] = None


def _beside_libtapestore() -> Optional[str]:
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(" ", 1)[-1].strip()
                if "/libtapestore.so" in path:
                    cand = _os.path.join(_os.path.dirname(path), _LIBNAME)
                    if _os.path.exists(cand):
                        return cand
    except OSError:
        pass
    return None


def library() -> _ct.CDLL:
    """The conformance library (loaded once). ConfigError if not found."""
    global _lib
    if _lib is not None:
        return _lib
    tried: List[str] = []
    for cand in (_os.environ.get("TAPE_CONFORMANCE_LIB"), _beside_libtapestore(), _LIBNAME):
        if not cand:
            continue
        try:
            lib = _ct.CDLL(cand)
            break
        except OSError as e:
            tried.append(f"{cand}: {e}")
    else:
        raise ConfigError("tapestore.conformance: cannot load " + _LIBNAME + " (set "
                          "TAPE_CONFORMANCE_LIB): " + "; ".join(tried))
    lib.tape_conformance_run.argtypes = [_ct.POINTER(_CReport), _ct.c_void_p, _ct.c_char_p,
                                         _ct.c_char_p, _ct.c_char_p, _EMIT, _ct.c_void_p]
    lib.tape_conformance_run.restype = _ct.c_int
    lib.tape_conformance_case_count.restype = _ct.c_size_t
    lib.tape_conformance_case_name.argtypes = [_ct.c_size_t]
    lib.tape_conformance_case_name.restype = _ct.c_char_p
    _lib = lib
    return lib


def case_names() -> List[str]:
    """The names of the suite's cases, in order."""
    lib = library()
    return [lib.tape_conformance_case_name(i).decode() for i in range(lib.tape_conformance_case_count())]


def run(provider: str, config: str = "{}", *, only: Optional[str] = None, registry: Any = None,
        emit: Optional[Callable[[str], None]] = print) -> Report:
    """Run the suite (or the cases whose name contains ``only``) against
    ``provider`` of ``registry`` (None: the default registry), each case
    opening its store with ``config`` (JSON text; ``@DIR@`` and ``@NS@``
    inside strings are replaced per case). ``emit`` gets each TAP line.
    Raises the core's error when the suite cannot run (NotFound: no such
    provider or case)."""
    lib = library()
    rep = _CReport(1, 0, 0, 0)
    errors: List[BaseException] = []

    def _emit(_ud: Any, line: bytes) -> None:
        if emit is not None and not errors:
            try:
                emit(line.decode("utf-8", "backslashreplace"))
            except BaseException as e:  # noqa: B902 - re-raised after the run
                errors.append(e)

    cb = _EMIT(_emit)
    reg = None if registry is None else int(registry.this)
    rc = lib.tape_conformance_run(_ct.byref(rep), reg, provider.encode(), config.encode(),
                                  None if only is None else only.encode(), cb, None)
    if errors:
        raise errors[0]
    if rc != 0:
        # The core's message of this thread (ctypes ran the suite here).
        raise ERRORS.get(rc, TapeError)(_c.tape_errmsg(), rc)
    return Report(rep.passed, rep.failed, rep.skipped)


def main(argv: Optional[List[str]] = None) -> int:
    """The command: exit 0 when every case passed or was skipped, 1 when a
    case failed, 2 on a usage or setup error (like tape-conformance)."""
    import argparse
    ap = argparse.ArgumentParser(prog="python3 -m tapestore.conformance",
                                 description="Run the tapestore provider conformance suite.")
    ap.add_argument("provider")
    ap.add_argument("config", nargs="?", default="{}")
    ap.add_argument("--plugin", action="append", default=[],
                    help="a Python file to run first (it registers its provider) or a C plugin library")
    ap.add_argument("--only", help="run only the cases whose name contains this")
    a = ap.parse_args(argv)
    try:
        for p in a.plugin:
            if p.endswith(".py"):
                _runpy.run_path(p, run_name="__tapestore_plugin__")
            else:
                _c.tape_registry_load_plugin(_c.tape_swig_registry_default(), p)
        r = run(a.provider, a.config, only=a.only)
    except TapeError as e:
        print(f"Bail out! {e}", flush=True)
        print(f"tapestore.conformance: {e}", file=_sys.stderr)
        return 2
    print(f"# passed {r.passed}, failed {r.failed}, skipped {r.skipped}", flush=True)
    return 0 if r.ok else 1


if __name__ == "__main__":
    _sys.exit(main())
