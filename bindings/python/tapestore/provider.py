"""Providers written in Python (docs/providers-python.md).

``register_provider(name, cls)`` makes a class a tapestore provider that C
code, the ``tapestore`` command and the conformance suite find by name. The
trampolines (tape_trampoline.c) call :func:`_dispatch` with the op's name;
it wraps the arguments in the package's objects, calls the method of that
name, checks what it returns and revokes the objects it lent.
"""

import atexit as _atexit
import json as _json
import threading as _threading
from typing import Any, Iterable, Iterator, List, Optional, Tuple

from . import capi as _c
from . import (SEQ_END, Entry, Frame, InvalidArgument, ProviderError, StoreStats, Tape, TapeError,
               _pending)

__all__ = ["register_provider", "unregister_provider", "Query", "REQUIRED_METHODS",
           "OPTIONAL_METHODS"]

#: methods every provider class must have (the required vtable slots)
REQUIRED_METHODS = ("save", "load", "delete", "list")
#: optional method -> the bit that tells the trampolines to fill its slot(s)
OPTIONAL_METHODS = {
    "open": 1 << 0, "close": 1 << 1, "exists": 1 << 2, "search": 1 << 3, "stats": 1 << 4,
    "begin_recording": 1 << 5, "frames": 1 << 6, "control": 1 << 7, "validate": 1 << 8,
}
_RECORDING_METHODS = ("append", "correlate", "end")


def _tname(v: Any) -> str:
    return type(v).__name__


def _bad(method: str, value: Any, expected: str) -> ProviderError:
    return ProviderError(f"{method} returned {_tname(value)}, expected {expected}")


def _none(method: str, value: Any) -> None:
    if value is not None:
        raise _bad(method, value, "None")


def _entry_of(method: str, item: Any) -> Any:
    """An owned tape_entry proxy for a Tape, an Entry or a .meta.json dict."""
    if isinstance(item, Tape):
        return item._do(_c.tape_entry_from_tape)
    if isinstance(item, Entry):
        return _c._entry_from_meta(item._meta)
    if isinstance(item, dict):
        return _c._entry_from_meta(_json.dumps(item).encode("utf-8", "surrogateescape"))
    raise ProviderError(f"{method} gave {_tname(item)}, expected a Tape, an Entry or a "
                        ".meta.json dict")


class Query(dict):
    """The query a ``list`` or ``search`` receives: a dict of the core's
    normalised query JSON (``order_by`` and ``descending`` always present),
    plus helpers that apply the core's own matcher, so a provider's answer
    means exactly what the core's would."""

    def __init__(self, text: str) -> None:
        super().__init__(_json.loads(text))
        self._q = _c.tape_query_parse(text)

    def match(self, item: Any) -> bool:
        """True if ``item`` (a Tape, an Entry or a .meta.json dict) matches
        every term; a Tape is matched with ``text`` too, the others without
        it (they hold no frames)."""
        if isinstance(item, Tape):
            return bool(item._do(lambda t: _c.tape_query_match_tape(self._q, t)))
        return bool(_c.tape_query_match_entry(self._q, _entry_of("match", item)))

    def page(self, items: Iterable[Any]) -> Tuple[List[Entry], Optional[str]]:
        """One page of ``items`` under this query, exactly as the core's
        fallback search computes it (matcher except ``text``, order, cursor,
        limit): ``(entries, next_cursor)``, ready for ``search`` to return."""
        entries, cursor = _c._query_page(self._q, [_entry_of("page", x) for x in items])
        return [Entry(e) for e in entries], cursor


# ------------------------------------------------------------------ dispatch

def _create(cls: Any, config: str) -> Any:
    return cls(_json.loads(config))


def _validate(cls: Any, config: str) -> None:
    _none("validate", cls.validate(_json.loads(config)))


def _save(inst: Any, t: Any) -> None:
    tape = Tape._lend(t)
    try:
        r = inst.save(tape)
    finally:
        tape._revoke()
    _none("save", r)


def _load(inst: Any, id: str) -> Any:
    r = inst.load(id)
    if r is None:
        return None
    if not isinstance(r, Tape):
        raise _bad("load", r, "a Tape or None")
    copy = r._do(_c.tape_clone)
    copy.thisown = False  # the core owns (and frees) what load gives it
    return copy


def _delete(inst: Any, id: str) -> None:
    _none("delete", inst.delete(id))


def _iterate(method: str, r: Any) -> Iterator[Any]:
    if r is None or isinstance(r, (str, bytes, dict)):
        raise _bad(method, r, "an iterable of Tape, Entry or .meta.json dicts")
    try:
        it = iter(r)
    except TypeError:
        raise _bad(method, r, "an iterable of Tape, Entry or .meta.json dicts") from None
    return it


def _list(inst: Any, query: str) -> Iterator[Any]:
    it = _iterate("list", inst.list(Query(query)))
    return (_entry_of("list", x) for x in it)


def _open(inst: Any) -> None:
    _none("open", inst.open())


def _close(inst: Any) -> None:
    _none("close", inst.close())


def _exists(inst: Any, id: str) -> bool:
    r = inst.exists(id)
    if not isinstance(r, bool):
        raise _bad("exists", r, "bool")
    return r


def _search(inst: Any, query: str) -> Tuple[List[Any], Optional[str]]:
    r = inst.search(Query(query))
    if not isinstance(r, tuple) or len(r) != 2 or not (r[1] is None or isinstance(r[1], str)):
        raise _bad("search", r, "a tuple (entries, next_cursor or None)")
    return [_entry_of("search", x) for x in _iterate("search", r[0])], r[1]


def _stats(inst: Any) -> Tuple[int, int, int]:
    r = inst.stats()
    if isinstance(r, StoreStats):
        r = {"tape_count": r.tape_count, "frame_count": r.frame_count, "total_bytes": r.total_bytes}
    if not isinstance(r, dict):
        raise _bad("stats", r, "a dict with tape_count, frame_count and total_bytes")
    out = []
    for k in ("tape_count", "frame_count", "total_bytes"):
        v = r.get(k, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >= 2**64:
            raise ProviderError(f"stats returned {k}={v!r}, expected an int in [0, 2**64)")
        out.append(v)
    return out[0], out[1], out[2]


def _control(inst: Any, op: str, input: Optional[str]) -> Optional[str]:
    r = inst.control(op, None if input is None else _json.loads(input))
    if r is None:
        return None
    try:
        return _json.dumps(r)
    except (TypeError, ValueError) as e:
        raise ProviderError(f"control returned {_tname(r)}, which is not JSON-able: {e}") from e


def _begin(inst: Any, header: Any) -> Any:
    h = Tape._lend(header)
    try:
        rec = inst.begin_recording(h)
    finally:
        h._revoke()
    missing = [m for m in _RECORDING_METHODS if not callable(getattr(rec, m, None))]
    if missing:
        raise ProviderError(f"begin_recording returned {_tname(rec)}, which lacks "
                            f"{', '.join(missing)} (a recording needs append, correlate and end)")
    return rec


def _lent_call(method: str, fn: Any, header: Any, *args: Any) -> None:
    h = Tape._lend(header)
    try:
        r = fn(*args[:1], h, *args[1:]) if method == "recording.append" else fn(h, *args)
    finally:
        h._revoke()
    _none(method, r)


def _append(rec: Any, frame: Any, header: Any) -> None:
    _lent_call("recording.append", rec.append, header, Frame(frame))


def _correlate(rec: Any, header: Any, index: int) -> None:
    _lent_call("recording.correlate", rec.correlate, header, index)


def _end(rec: Any, header: Any, finalized: int) -> None:
    _lent_call("recording.end", rec.end, header, bool(finalized))


def _frames(inst: Any, id: str, from_seq: int, to_seq: int) -> Optional[Iterator[bytes]]:
    stop = None if to_seq >= SEQ_END else to_seq + 1
    r = inst.frames(id, from_seq, stop)
    if r is None:
        return None
    it = _iterate("frames", r)

    def lines() -> Iterator[bytes]:
        for f in it:
            if not isinstance(f, Frame):
                raise ProviderError(f"frames yielded {_tname(f)}, expected a Frame")
            yield f.line.rstrip(b"\n")
    return lines()


_OPS = {
    "create": _create, "validate": _validate, "save": _save, "load": _load, "delete": _delete,
    "list": _list, "open": _open, "close": _close, "exists": _exists, "search": _search,
    "stats": _stats, "control": _control, "begin_recording": _begin, "append": _append,
    "correlate": _correlate, "end": _end, "frames": _frames,
}


def _dispatch(op: str, target: Any, args: Tuple[Any, ...]) -> Any:
    return _OPS[op](target, *args)


def _stash(exc: BaseException) -> None:
    # The exception of a provider called from a Python host call on this
    # thread: the host call re-raises it chained under its own.
    _pending.exc = exc


_c._provider_init(TapeError, _stash)

# ------------------------------------------------------------------ registration

_lock = _threading.Lock()
_registered: dict = {}  # (id(registry) or 0, name) -> registry proxy (None: default)


def register_provider(name: str, cls: type, version: int = 1, description: Optional[str] = None,
                      registry: Any = None) -> None:
    """Register ``cls`` as provider ``name`` in the default registry (or
    ``registry``, a ``tapestore.capi`` registry). The core calls
    ``cls.validate(config)`` if there is one, then ``cls(config)`` for each
    store, with the config as a dict. Methods: ``save``, ``load``,
    ``delete``, ``list`` (required); ``open``, ``close``, ``exists``,
    ``search``, ``stats``, ``begin_recording``, ``frames``, ``control``
    (optional: absent, the core's fallback runs). A class attribute
    ``concurrent = True`` lets calls run at once (else one at a time per
    store); ``persistent = True`` declares the data outlives the process.
    InvalidArgument names a missing required method; AlreadyExists if the
    name is taken."""
    if not isinstance(name, str):
        raise InvalidArgument(f"register_provider: name must be a str, got {_tname(name)}")
    if not callable(cls):
        raise InvalidArgument(f"register_provider {name!r}: expected a class, got {_tname(cls)}")
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise InvalidArgument(f"register_provider {name!r}: {getattr(cls, '__name__', cls)!s} lacks "
                              f"the required method(s) {', '.join(missing)}")
    if not isinstance(version, int) or not 0 <= version < 2**32:
        raise InvalidArgument(f"register_provider {name!r}: version must be an int in [0, 2**32)")
    ops = 0
    for m, bit in OPTIONAL_METHODS.items():
        if callable(getattr(cls, m, None)):
            ops |= bit
    _c._provider_register(registry, name, cls, _dispatch, version, description, ops,
                          int(bool(getattr(cls, "concurrent", False))),
                          int(bool(getattr(cls, "persistent", False))))
    with _lock:
        _registered[(0 if registry is None else id(registry), name)] = registry


def unregister_provider(name: str, registry: Any = None) -> None:
    """Remove provider ``name`` (stores already open keep working; the
    class is released when the last of them closes). NotFound if absent."""
    reg = _c.tape_swig_registry_default() if registry is None else registry
    _c.tape_registry_unregister(reg, name)
    with _lock:
        _registered.pop((0 if registry is None else id(registry), name), None)


def _shutdown() -> None:
    # At exit: unregister what we registered, then refuse new calls and wait
    # for those in flight, before finalisation makes taking the GIL fatal.
    with _lock:
        items = list(_registered.items())
        _registered.clear()
    for (_, name), reg in items:
        try:
            _c.tape_registry_unregister(_c.tape_swig_registry_default() if reg is None else reg, name)
        except TapeError:
            pass
    _c._provider_shutdown()


_atexit.register(_shutdown)
