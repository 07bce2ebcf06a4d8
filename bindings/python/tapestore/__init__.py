"""tapestore: store and query recordings of MCP (JSON-RPC) sessions.

A small pythonic layer over the C library (the SWIG module
``tapestore.capi``, the raw C API). Open a store, save and load tapes, query them,
record sessions frame by frame::

    import tapestore
    with tapestore.open("memory:") as store:
        tape = tapestore.Tape(name="demo", tags=["prod"])
        tape.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 1, "method": "ping"})
        store.save(tape)
        for entry in store.query(tags_any=["prod"]):
            print(entry.id, entry.name)

Every core error raises a subclass of :class:`TapeError` (see
:data:`ERRORS`). The GIL is released on every call into the core. See
docs/python.md for the whole API.
"""


import atexit as _atexit
import datetime as _dt
import itertools as _itertools
import json as _json
import logging as _logging
import os as _os
import threading as _threading
from _thread import get_ident as _get_ident
from dataclasses import dataclass as _dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from . import capi as _c
# The per-frame calls, straight from the extension module: capi.py wraps
# every function in a Python def of its own.
from ._capi import _frames_of, _iter_frames

__all__ = [
    "CLIENT_TO_SERVER", "SERVER_TO_CLIENT", "RECORDING", "FINALIZED", "SEQ_END",
    "CAPABILITIES", "ERRORS", "TapeError", "NotFound", "AlreadyExists", "InvalidArgument",
    "ConfigError", "IOError", "CorruptError", "Unsupported", "OutOfMemory", "ProviderError",
    "Busy", "VersionError", "QueryError", "LimitExceeded", "StateError",
    "open", "Store", "Tape", "Frame", "Correlation", "Entry", "Page", "TapeStats",
    "StoreStats", "Recording", "FrameIterator", "QueryIterator",
    "install_log_hook", "remove_log_hook", "version",
    "register_provider", "unregister_provider", "Query",
]

# ------------------------------------------------------------------ constants

CLIENT_TO_SERVER = "client_to_server"  #: a message the client sent to the server
SERVER_TO_CLIENT = "server_to_client"  #: a message the server sent to the client
RECORDING = "recording"  #: status of a tape being recorded (or abandoned)
FINALIZED = "finalized"  #: status of a finished tape
SEQ_END = 2**63 - 1  #: TAPE_SEQ_END: "to the end" for Store.frames(stop=...)

_DIRS = {CLIENT_TO_SERVER: _c.TAPE_DIR_CLIENT_TO_SERVER, SERVER_TO_CLIENT: _c.TAPE_DIR_SERVER_TO_CLIENT}
_DIR_NAMES = {v: k for k, v in _DIRS.items()}
_STATUS = {RECORDING: _c.TAPE_STATUS_RECORDING, FINALIZED: _c.TAPE_STATUS_FINALIZED}
_STATUS_NAMES = {v: k for k, v in _STATUS.items()}

#: capability name -> TAPE_CAP_* bit
CAPABILITIES = {
    "exists": _c.TAPE_CAP_EXISTS,
    "search": _c.TAPE_CAP_SEARCH,
    "stats": _c.TAPE_CAP_STATS,
    "writer": _c.TAPE_CAP_WRITER,
    "read_frames": _c.TAPE_CAP_READ_FRAMES,
    "control": _c.TAPE_CAP_CONTROL,
    "thread_safe": _c.TAPE_CAP_THREAD_SAFE,
    "persistent": _c.TAPE_CAP_PERSISTENT,
    "writer_retry": _c.TAPE_CAP_WRITER_RETRY,
}


def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    v = _c.tape_version()
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


# ------------------------------------------------------------------ errors

_builtin_IOError = OSError


class TapeError(Exception):
    """Base of every tapestore error. ``.code`` is the core's TAPE_E* code
    (negative int), ``.message`` its message; str() is the message."""

    code: int = 0

    def __init__(self, message: str = "", code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:  # KeyError would show repr(message)
        return self.message


class NotFound(TapeError, KeyError):
    """No tape, provider or key of that name (TAPE_ENOTFOUND); also a KeyError."""
    code = _c.TAPE_ENOTFOUND


class AlreadyExists(TapeError):
    """The name is already taken (TAPE_EEXISTS)."""
    code = _c.TAPE_EEXISTS


class InvalidArgument(TapeError, ValueError):
    """An invalid argument (TAPE_EINVAL); also a ValueError."""
    code = _c.TAPE_EINVAL


class ConfigError(TapeError):
    """An invalid store configuration; the message names the key (TAPE_ECONFIG)."""
    code = _c.TAPE_ECONFIG


class IOError(TapeError, _builtin_IOError):  # noqa: A001 - the issue names it so
    """An operating-system I/O failure (TAPE_EIO); also an OSError."""
    code = _c.TAPE_EIO


class CorruptError(TapeError):
    """Stored data is malformed (TAPE_ECORRUPT)."""
    code = _c.TAPE_ECORRUPT


class Unsupported(TapeError):
    """The backend cannot do this (TAPE_EUNSUPPORTED)."""
    code = _c.TAPE_EUNSUPPORTED


class OutOfMemory(TapeError, MemoryError):
    """Out of memory (TAPE_ENOMEM); also a MemoryError."""
    code = _c.TAPE_ENOMEM


class ProviderError(TapeError):
    """A provider (often a script) failed (TAPE_EPROVIDER)."""
    code = _c.TAPE_EPROVIDER


class Busy(TapeError):
    """The tape is being written by someone else (TAPE_EBUSY)."""
    code = _c.TAPE_EBUSY


class VersionError(TapeError):
    """A struct, vtable or plugin version is not supported (TAPE_EVERSION)."""
    code = _c.TAPE_EVERSION


class QueryError(TapeError):
    """An invalid query; the message names the key (TAPE_EQUERY)."""
    code = _c.TAPE_EQUERY


class LimitExceeded(TapeError):
    """A configured limit was exceeded (TAPE_ELIMIT)."""
    code = _c.TAPE_ELIMIT


class StateError(TapeError):
    """The call is not valid in this state: a closed store, a child of a
    closed store, a finished writer (TAPE_ESTATE)."""
    code = _c.TAPE_ESTATE


#: TAPE_E* code -> exception class
ERRORS: Dict[int, type] = {cls.code: cls for cls in (
    NotFound, AlreadyExists, InvalidArgument, ConfigError, IOError, CorruptError, Unsupported,
    OutOfMemory, ProviderError, Busy, VersionError, QueryError, LimitExceeded, StateError)}

# The SWIG wrappers raise through this table (tape_python.c): one mechanism.
_c._set_error_classes(ERRORS)


def _state(msg: str) -> StateError:
    return StateError(msg, _c.TAPE_ESTATE)


def _invalid(msg: str) -> InvalidArgument:
    return InvalidArgument(msg, _c.TAPE_EINVAL)


# ------------------------------------------------------------------ logging

_logger = _logging.getLogger("tapestore")
_logger.addHandler(_logging.NullHandler())  # a library leaves output to the application
_LEVELS = {_c.TAPE_LOG_DEBUG: _logging.DEBUG, _c.TAPE_LOG_INFO: _logging.INFO,
           _c.TAPE_LOG_WARN: _logging.WARNING, _c.TAPE_LOG_ERROR: _logging.ERROR}


def _log_bridge(level: int, message: str) -> None:
    _logger.log(_LEVELS.get(level, _logging.WARNING), "%s", message)


def install_log_hook() -> None:
    """Send the core's log messages to ``logging.getLogger("tapestore")``
    (done on import). Safe to call again."""
    _c._log_install(_log_bridge)


def remove_log_hook() -> None:
    """Stop forwarding the core's log messages (waits for calls in flight)."""
    _c._log_remove()


install_log_hook()
# A hook must not take the GIL while the interpreter is finalising.
_atexit.register(remove_log_hook)

# ------------------------------------------------------------------ conversions

_TIME_NONE = -2**63  # TAPE_TIME_NONE (INT64_MIN): "no time set"
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
TimeLike = Union[_dt.datetime, int]


def _to_dt(ms: int) -> Optional[_dt.datetime]:
    if ms == _TIME_NONE:
        return None
    return _EPOCH + _dt.timedelta(milliseconds=ms)


def _to_ms(value: TimeLike, what: str) -> int:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise _invalid(f"{what}: a naive datetime has no time zone (use timezone.utc)")
        delta = value - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _invalid(f"{what}: expected a datetime or milliseconds since the epoch, "
                   f"got {type(value).__name__}")


# One encoder for every message: json.dumps with options builds a new
# JSONEncoder per call, and JSONEncoder.encode a new C encoder per call;
# together they cost more than the append. json's C encoder (what encode()
# builds) is made once here, without circular-reference markers: a shared
# markers dict would be state between threads. On any error (a cycle ends
# in RecursionError there) json.dumps runs, raising its usual exception.
def _not_serializable(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _make_encoder() -> Any:
    from json import encoder as _enc
    if _enc.c_make_encoder is None:  # a Python without _json
        return None
    return _enc.c_make_encoder(None, _not_serializable, _enc.c_encode_basestring, None, ":", ",",
                               False, False, True)


_iterencode = _make_encoder()


def _encode_compact(message: Any) -> str:
    if _iterencode is not None:
        try:
            return "".join(_iterencode(message, 0))
        except Exception:
            pass
    return _json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _message_bytes(message: Any) -> bytes:
    """A message as the bytes the core stores: dict/list/... -> JSON text,
    str -> UTF-8 (surrogateescape, so bytes decoded that way come back),
    bytes as is."""
    if type(message) is not dict:  # the usual message goes straight to the encoder
        if isinstance(message, bytes):
            return message
        if isinstance(message, (bytearray, memoryview)):
            return bytes(message)
        if isinstance(message, str):
            return message.encode("utf-8", "surrogateescape")
    text = _encode_compact(message)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: keep them as \\u escapes
        return _json.dumps(message, separators=(",", ":")).encode("ascii")


def _text_bytes(text: Union[str, bytes], what: str) -> bytes:
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        return text.encode("utf-8", "surrogateescape")
    raise _invalid(f"{what}: expected bytes or str, got {type(text).__name__}")


def _json_or_none(text: Optional[str]) -> Any:
    return None if text is None else _json.loads(text)


def _caps(bits: int) -> frozenset:
    return frozenset(name for name, bit in CAPABILITIES.items() if bits & bit)


# ------------------------------------------------------------------ value objects

@_dataclass(frozen=True)
class TapeStats:
    """Statistics of one tape."""
    frame_count: int
    duration_ms: int
    last_sequence: int
    client_to_server: int
    server_to_client: int
    error_count: int
    correlation_count: int
    file_size_bytes: int

    @classmethod
    def _from(cls, s: Any) -> "TapeStats":
        return cls(s.frame_count, s.duration_ms, s.last_sequence, s.client_to_server,
                   s.server_to_client, s.error_count, s.correlation_count, s.file_size_bytes)


@_dataclass(frozen=True)
class StoreStats:
    """Statistics of a whole store."""
    tape_count: int
    frame_count: int
    total_bytes: int


@_dataclass(frozen=True)
class Correlation:
    """A request/response pair: frame ``response_seq`` answers ``request_seq``."""
    id: Optional[str]
    request_seq: int
    response_seq: int
    rtt_ms: int
    status: Optional[str]


#: One recorded message, copied out of the core (a C type, tape_py_frame.c:
#: reading a tape is mostly making these). Attributes: seq, ts, direction,
#: correlation_id, is_error, invalid_json, oversize, oversize_length,
#: oversize_sha256, raw, message_text, line; ``message`` is decoded with
#: :mod:`json` on first use, together with the frames read in the same batch.
Frame = _c._frame_type()
_ROWS_BATCH = 512  # frames copied per C call by the iterators (one decode batch)


class Entry:
    """A tape's metadata and stats as a listing returns them (no frames)."""

    __slots__ = ("id", "name", "description", "session_id", "status", "created_at",
                 "updated_at", "tags", "stats", "_meta")

    def __init__(self, e: Any) -> None:
        self.id: str = _c.tape_entry_id(e)
        self.name: Optional[str] = _c.tape_entry_name(e)
        self.description: Optional[str] = _c.tape_entry_description(e)
        self.session_id: Optional[str] = _c.tape_entry_session_id(e)
        self.status: str = _STATUS_NAMES.get(_c.tape_entry_status(e), "unknown")
        self.created_at: Optional[_dt.datetime] = _to_dt(_c.tape_entry_created_at(e))
        self.updated_at: Optional[_dt.datetime] = _to_dt(_c.tape_entry_updated_at(e))
        self.tags: List[str] = [_c.tape_entry_tag_at(e, i) for i in range(_c.tape_entry_tag_count(e))]
        self.stats: TapeStats = TapeStats._from(_c.tape_entry_get_stats(e))
        self._meta: bytes = _c.tape_entry_meta_json(e)

    @property
    def meta(self) -> Dict[str, Any]:
        """The entry as its .meta.json document (a dict)."""
        return _json.loads(self._meta)

    def __repr__(self) -> str:
        return f"<Entry {self.id!r} name={self.name!r} {self.status}>"


@_dataclass(frozen=True)
class Page:
    """One page of query results and the cursor of the next (None: last page)."""
    entries: List[Entry]
    next_cursor: Optional[str]


# ------------------------------------------------------------------ tapes

class Tape:
    """A tape: metadata plus ordered frames and correlations, in memory.

    ``Tape(name=..., tags=[...], id=None)`` makes a new tape with status
    recording (a UUID v4 id when ``id`` is None)."""

    def __init__(self, name: Optional[str] = None, tags: Iterable[str] = (), id: Optional[str] = None,
                 *, description: Optional[str] = None, session_id: Optional[str] = None,
                 protocol_version: Optional[str] = None) -> None:
        self._t = _c.tape_new(id)
        self._ro = False
        # The core lets one thread at a time use a tape; the GIL is released
        # during each call, so the tape has a lock of its own.
        self._lock = _threading.RLock()
        if name is not None:
            self.name = name
        if description is not None:
            self.description = description
        if session_id is not None:
            self.session_id = session_id
        if protocol_version is not None:
            self.protocol_version = protocol_version
        for tag in tags:
            self.add_tag(tag)

    @classmethod
    def _wrap(cls, handle: Any) -> "Tape":
        t = cls.__new__(cls)
        t._t = handle
        t._ro = False
        t._lock = _threading.RLock()
        return t

    @classmethod
    def _lend(cls, handle: Any) -> "Tape":
        # A core tape lent to a provider method for the duration of the
        # call (tapestore.provider): read-only, invalidated afterwards.
        t = cls._wrap(handle)
        t._ro = True
        return t

    def _revoke(self) -> None:
        with self._lock:
            self._t = None

    def _handle(self) -> Any:
        if self._t is None:
            raise _state("this tape was lent to a provider method whose call has returned; "
                         "copy() it during the call to keep it")
        return self._t

    def _do(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            t = self._handle()
            if self._ro and fn in _MUTATORS:
                raise _state("this tape was lent read-only to a provider method; copy() it to change it")
            return fn(t, *args)

    # metadata -------------------------------------------------------
    @property
    def id(self) -> str:
        """The tape's id (read-only)."""
        return self._do(_c.tape_id)

    @property
    def name(self) -> Optional[str]:
        """The name (None when unset)."""
        return self._do(_c.tape_name)

    @name.setter
    def name(self, value: Optional[str]) -> None:
        self._do(_c.tape_set_name, value)

    @property
    def description(self) -> Optional[str]:
        """The description (None when unset)."""
        return self._do(_c.tape_description)

    @description.setter
    def description(self, value: Optional[str]) -> None:
        self._do(_c.tape_set_description, value)

    @property
    def session_id(self) -> Optional[str]:
        """The MCP session id (None when unset)."""
        return self._do(_c.tape_session_id)

    @session_id.setter
    def session_id(self, value: Optional[str]) -> None:
        self._do(_c.tape_set_session_id, value)

    @property
    def protocol_version(self) -> Optional[str]:
        """The MCP protocol version, e.g. "2025-06-18" (None when unset)."""
        return self._do(_c.tape_protocol_version)

    @protocol_version.setter
    def protocol_version(self, value: Optional[str]) -> None:
        self._do(_c.tape_set_protocol_version, value)

    @property
    def status(self) -> str:
        """RECORDING or FINALIZED."""
        return _STATUS_NAMES[self._do(_c.tape_status)]

    @status.setter
    def status(self, value: str) -> None:
        if value not in _STATUS:
            raise _invalid(f"status: expected {RECORDING!r} or {FINALIZED!r}, got {value!r}")
        self._do(_c.tape_set_status, _STATUS[value])

    @property
    def created_at(self) -> _dt.datetime:
        """Creation time (timezone-aware UTC)."""
        return _to_dt(self._do(_c.tape_created_at))  # type: ignore[return-value]

    @created_at.setter
    def created_at(self, value: TimeLike) -> None:
        self._do(_c.tape_set_created_at, _to_ms(value, "created_at"))

    @property
    def updated_at(self) -> Optional[_dt.datetime]:
        """Time of the last update (UTC), None if unset."""
        return _to_dt(self._do(_c.tape_updated_at))

    @updated_at.setter
    def updated_at(self, value: Optional[TimeLike]) -> None:
        self._do(_c.tape_set_updated_at, _TIME_NONE if value is None else _to_ms(value, "updated_at"))

    @property
    def finalized_at(self) -> Optional[_dt.datetime]:
        """Time the recording was finalized (UTC), None if unset."""
        return _to_dt(self._do(_c.tape_finalized_at))

    @finalized_at.setter
    def finalized_at(self, value: Optional[TimeLike]) -> None:
        self._do(_c.tape_set_finalized_at, _TIME_NONE if value is None else _to_ms(value, "finalized_at"))

    @property
    def transport(self) -> Any:
        """The transport (any JSON value, decoded; None when unset)."""
        return _json_or_none(self._do(_c.tape_transport_json))

    @transport.setter
    def transport(self, value: Any) -> None:
        self._do(_c.tape_set_transport_json, None if value is None else _json.dumps(value))

    @property
    def environment(self) -> Any:
        """The environment (any JSON value, decoded; None when unset)."""
        return _json_or_none(self._do(_c.tape_environment_json))

    @environment.setter
    def environment(self, value: Any) -> None:
        self._do(_c.tape_set_environment_json, None if value is None else _json.dumps(value))

    @property
    def tags(self) -> List[str]:
        """The tags in insertion order (a copy; assign a list to replace them)."""
        return [self._do(_c.tape_tag_at, i) for i in range(self._do(_c.tape_tag_count))]

    @tags.setter
    def tags(self, value: Iterable[str]) -> None:
        new = list(value)
        with self._lock:
            for tag in self.tags:
                if tag not in new:
                    self._do(_c.tape_remove_tag, tag)
            for tag in new:
                self._do(_c.tape_add_tag, tag)

    def add_tag(self, tag: str) -> None:
        """Add a tag (a present tag is a no-op)."""
        self._do(_c.tape_add_tag, tag)

    def remove_tag(self, tag: str) -> None:
        """Remove a tag; NotFound if absent."""
        self._do(_c.tape_remove_tag, tag)

    def has_tag(self, tag: str) -> bool:
        """True if the tape has the tag."""
        return bool(self._do(_c.tape_has_tag, tag))

    @property
    def stats(self) -> TapeStats:
        """The tape's statistics."""
        return TapeStats._from(self._do(_c.tape_get_stats))

    # frames ---------------------------------------------------------
    def append(self, direction: str, message: Any, *, ts_ms: Optional[int] = None,
               correlation_id: Optional[str] = None, transport: Any = None, flags: Any = None,
               invalid_json: bool = False, oversize: bool = False, prefix_bytes: int = 0) -> int:
        """The general path of Tape.append (kept as Tape._append_with; see
        the C method's docstring)."""
        with self._lock:
            t = self._handle()
            if self._ro:
                raise _state("this tape was lent read-only to a provider method; copy() it to change it")
            return _append(None, t, direction, message, ts_ms, correlation_id, transport,
                           flags, invalid_json, oversize, prefix_bytes)

    def __len__(self) -> int:
        return self._do(_c.tape_frame_count)

    def frames(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Frame]:
        """Iterate the frames with ``start <= index < stop`` as Frame objects."""
        i = max(start, 0)
        while stop is None or i < stop:
            end = i + _ROWS_BATCH if stop is None else min(stop, i + _ROWS_BATCH)
            with self._lock:  # copied before another thread can append
                rows = _frames_of(self._handle(), i, end)
            if not rows:
                return
            yield from rows
            i += len(rows)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    @property
    def correlations(self) -> List[Correlation]:
        """The recorded request/response pairs."""
        with self._lock:
            return [Correlation(*self._do(_c.tape_correlation_get, i))
                    for i in range(self._do(_c.tape_correlation_count))]

    def add_correlation(self, id: Optional[str], request_seq: int, response_seq: int,
                        rtt_ms: int = 0, status: Optional[str] = None) -> None:
        """Record that frame ``response_seq`` answers ``request_seq``."""
        self._do(_c.tape_add_correlation, id, request_seq, response_seq, rtt_ms, status)

    # codec ------------------------------------------------------------
    def to_jsonl(self) -> bytes:
        """The .jsonl document (bytes: a message may hold any byte)."""
        return self._do(_c.tape_encode_jsonl)

    def to_meta_json(self) -> bytes:
        """The .meta.json document (bytes)."""
        return self._do(_c.tape_encode_meta)

    @classmethod
    def from_jsonl(cls, text: Union[bytes, str], meta: Union[bytes, str, None] = None, *,
                   recover: bool = False, max_line_bytes: int = 0) -> "Tape":
        """Decode a tape from its .jsonl document and optionally its
        .meta.json. bytes are taken as they are; str is encoded as UTF-8
        with surrogateescape (so ``text.decode("utf-8", "surrogateescape")``
        comes back byte for byte). ``recover`` skips invalid lines."""
        data = _text_bytes(text, "from_jsonl")
        m = b"" if meta is None else _text_bytes(meta, "from_jsonl meta")
        mode = _c.TAPE_DECODE_RECOVER if recover else _c.TAPE_DECODE_STRICT
        return cls._wrap(_c.tape_swig_decode(data, m, mode, max_line_bytes))

    def copy(self) -> "Tape":
        """A deep copy."""
        return Tape._wrap(self._do(_c.tape_clone))

    def __repr__(self) -> str:
        return f"<Tape {self.id!r} name={self.name!r} {len(self)} frames>"


# Tape.append is a C method (tape_python.c): its common case, a direction
# and a message, is most of writing a tape, and in Python each of its steps
# showed. It encodes a message that is not text with _message_bytes, takes
# the tape's lock and makes one core call; any option, or a revoked or
# read-only tape, goes to the Python method above, kept as _append_with
# (whose signature is the one list of the options).
Tape._append_with = Tape.append  # type: ignore[attr-defined]
Tape.append = _c._append_method(Tape, _message_bytes)  # type: ignore[method-assign]

# What a lent (read-only) tape refuses.
_MUTATORS = frozenset([
    _c.tape_set_name, _c.tape_set_description, _c.tape_set_session_id, _c.tape_set_protocol_version,
    _c.tape_set_status, _c.tape_set_created_at, _c.tape_set_updated_at, _c.tape_set_finalized_at,
    _c.tape_set_transport_json, _c.tape_set_environment_json, _c.tape_add_tag, _c.tape_remove_tag,
    _c.tape_add_correlation])


def _append(w: Any, t: Any, direction: str, message: Any, ts_ms: Optional[int],
            correlation_id: Optional[str], transport: Any, flags: Any, invalid_json: bool,
            oversize: bool, prefix_bytes: int) -> int:
    d = _DIRS.get(direction)
    if d is None:
        raise _invalid(f"direction: expected {CLIENT_TO_SERVER!r} or {SERVER_TO_CLIENT!r}, "
                       f"got {direction!r}")
    ff = (_c.TAPE_FRAME_INVALID_JSON if invalid_json else 0) | (_c.TAPE_FRAME_OVERSIZE if oversize else 0)
    return _c.tape_swig_append(t, w, d, -1 if ts_ms is None else ts_ms, _message_bytes(message),
                               correlation_id, None if transport is None else _json.dumps(transport),
                               None if flags is None else _json.dumps(flags), ff, prefix_bytes)


# ------------------------------------------------------------------ stores

def open(spec: Optional[str] = None, /, *, eager: bool = False, **config: Any) -> "Store":  # noqa: A001
    """Open a store.

    - ``open("filesystem", path="./tapes")``: a provider name, its config as keywords;
    - ``open("sqlite:tapes.db")``: a one-string spec (docs/config.md);
    - ``open()``: from ``$TAPESTORE_STORE``, default ``filesystem:./tapes``.

    ``eager`` initialises the backend now instead of on first use."""
    flags = _c.TAPE_OPEN_EAGER if eager else 0
    _pending.exc = None
    try:
        return Store(_open(spec, flags, config))
    except TapeError as e:
        _rechain(e)
        raise


def _open(spec: Optional[str], flags: int, config: Dict[str, Any]) -> Any:
    if spec is None:
        if config:
            raise _invalid("open: config keywords need a provider name")
        h = _c.tape_store_open_env(None, flags)
    elif config or ":" not in spec:
        if ":" in spec:
            raise _invalid(f"open: {spec!r} is a spec (name:config); pass config keywords "
                           "with a bare provider name")
        h = _c.tape_store_open(None, spec, _json.dumps(config), flags)
    else:
        h = _c.tape_store_open_spec(None, spec, flags)
    return h


class _Pending(_threading.local):
    """The exception a Python provider raised during the current host call
    on this thread (tapestore.provider stashes it), re-raised chained."""

    exc: Optional[BaseException] = None


_pending = _Pending()


def _rechain(e: TapeError) -> None:
    orig, _pending.exc = _pending.exc, None
    if orig is not None and orig is not e and e.__cause__ is None:
        e.__cause__ = orig


_tokens = _itertools.count()


class Store:
    """An open store (from :func:`open`). A context manager that closes on
    exit. Every method may be called from several threads at once; the GIL
    is released while the core works. After :meth:`close` every method and
    every child (frame iterator, recording, query iterator) raises
    StateError."""

    def __init__(self, handle: Any) -> None:
        handle.thisown = False  # closed explicitly, by close() or __del__
        self._h: Any = handle
        self._provider: str = _c.tape_store_provider(handle)
        # A plain lock (its context manager is C code, unlike Condition's):
        # every call takes it twice, so it sets the binding's per-call cost.
        self._mu = _threading.Lock()
        self._inflight: Dict[int, int] = {}  # thread id -> its calls in flight
        self._idle: Optional[Any] = None  # held while close() waits for calls in flight
        self._children: Dict[int, Tuple[Any, Any]] = {}  # token -> (handle, free)

    # guard: close waits for calls in flight, then refuses new ones
    def _enter(self) -> Any:
        tid = _get_ident()
        with self._mu:
            h = self._h
            if h is None:
                raise _state(f"store {self._provider!r} is closed")
            d = self._inflight
            d[tid] = d.get(tid, 0) + 1
        return h

    def _leave(self) -> None:
        tid = _get_ident()
        idle = None
        with self._mu:
            d = self._inflight
            n = d[tid] - 1
            if n:
                d[tid] = n
            else:
                del d[tid]
                if not d and self._idle is not None:
                    idle, self._idle = self._idle, None
        if idle is not None:
            idle.release()  # the last call out wakes close()

    def _call(self, fn: Any, *args: Any) -> Any:
        # _enter and _leave written out: this is every store call's path,
        # and two method calls were a tenth of an exists().
        tid = _get_ident()
        with self._mu:
            h = self._h
            if h is None:
                raise _state(f"store {self._provider!r} is closed")
            d = self._inflight
            d[tid] = d.get(tid, 0) + 1
        try:
            _pending.exc = None
            return fn(h, *args)
        except TapeError as e:
            _rechain(e)
            raise
        finally:
            idle = None
            with self._mu:
                n = d[tid] - 1
                if n:
                    d[tid] = n
                else:
                    del d[tid]
                    if not d and self._idle is not None:
                        idle, self._idle = self._idle, None
            if idle is not None:
                idle.release()  # the last call out wakes close()

    def _adopt(self, handle: Any, free: Any) -> int:
        handle.thisown = False  # freed by _release or close, never by the GC alone
        token = next(_tokens)
        with self._mu:
            if self._h is None:  # closed while the child was being made
                free(handle)
                raise _state(f"store {self._provider!r} is closed")
            self._children[token] = (handle, free)
        return token

    def _child(self, token: int) -> Any:
        entry = self._children.get(token)
        return None if entry is None else entry[0]

    def _release(self, token: int) -> None:
        with self._mu:
            entry = self._children.pop(token, None)
        if entry is not None:
            entry[1](entry[0])

    # lifetime ---------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._h is None

    @property
    def provider(self) -> str:
        """The provider's name."""
        return self._provider

    def close(self) -> None:
        """Close the store: waits for calls in flight, abandons open
        recordings (their tapes stay with status recording and what was
        appended), invalidates children, then flushes and releases the
        backend. Closing twice is a no-op. Closing from inside a call on
        this store (a log handler run by the core) raises StateError, since
        close would wait for that very call."""
        if _get_ident() in self._inflight:
            raise _state(f"store {self._provider!r}: close() called from inside a call on it")
        with self._mu:
            h = self._h
            if h is None:
                return
            self._h = None  # no new calls from here on
            idle = None
            if self._inflight:  # calls on other threads (this one has none)
                idle = self._idle = _threading.Lock()
                idle.acquire()
        if idle is not None:
            idle.acquire()  # released by the last call in flight
        with self._mu:
            children, self._children = self._children, {}
        for handle, free in children.values():
            free(handle)
        _pending.exc = None
        try:
            _c.tape_store_close(h)
        except TapeError as e:  # a Python provider's close: its exception chained
            _rechain(e)
            raise

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_h", None) is not None:
                self.close()
        except Exception:  # errors went to the log hook
            pass

    def __repr__(self) -> str:
        return f"<Store {self._provider!r}{' closed' if self._h is None else ''}>"

    # operations -------------------------------------------------------
    def save(self, tape: Tape) -> None:
        """Save a tape, replacing any tape with the same id."""
        with tape._lock:
            self._call(_c.tape_store_save, tape._handle())

    def load(self, id: str) -> Tape:
        """Load a tape; NotFound if there is none."""
        return Tape._wrap(self._call(_c.tape_store_load, id))

    def delete(self, id: str) -> None:
        """Delete a tape; NotFound if there is none."""
        self._call(_c.tape_store_delete, id)

    def exists(self, id: str) -> bool:
        """True if the store has a tape with this id."""
        return bool(self._call(_c.tape_store_exists, id))

    def __contains__(self, id: object) -> bool:
        return isinstance(id, str) and self.exists(id)

    def __len__(self) -> int:
        """Number of tapes (native stats where the backend has them, else a listing)."""
        return self.stats().tape_count

    def stats(self) -> StoreStats:
        """Statistics of the whole store."""
        s = self._call(_c.tape_store_stats_get)
        return StoreStats(s.tape_count, s.frame_count, s.total_bytes)

    def capabilities(self, native: bool = False) -> frozenset:
        """Names of the ops available (natively or through a core fallback),
        or with ``native=True`` only the backend's own (see CAPABILITIES)."""
        nat, avail = self._call(_c.tape_store_capabilities)
        return _caps(nat if native else avail)

    def control(self, op: str, input: Any = None) -> Any:
        """A provider-specific operation; Unsupported when the provider does
        not know ``op``. ``input`` and the answer are JSON values."""
        out = self._call(_c.tape_store_control, op, None if input is None else _json.dumps(input))
        return _json_or_none(out)

    # queries ----------------------------------------------------------
    def query(self, *, limit: Optional[int] = None, page_size: int = 1000,
              **terms: Any) -> "QueryIterator":
        """Iterate the entries matching a query, fetching pages through
        cursors by itself. ``limit`` caps the total; ``page_size`` sets how
        many entries each trip to the core fetches. Terms are the keys of
        docs/query.md: session_id, name_contains, tags_any, tags_all,
        status, created_after, created_before (datetime or ms),
        min_duration_ms, max_duration_ms, min_frames, max_frames, text,
        order_by, descending."""
        return QueryIterator(self, _query_json(terms), limit, page_size)

    def query_page(self, *, cursor: Optional[str] = None, limit: Optional[int] = None,
                   **terms: Any) -> Page:
        """One page of at most ``limit`` entries (None: all) after ``cursor``
        (None: the first page), with the cursor of the next."""
        if limit is not None:
            terms["limit"] = limit
        if cursor is not None:
            terms["cursor"] = cursor
        q = _c.tape_query_parse(_query_json(terms))
        return self._page(q)

    def _page(self, q: Any) -> Page:
        r = self._call(_c.tape_store_query, q)
        entries = [Entry(_c.tape_result_at(r, i)) for i in range(_c.tape_result_count(r))]
        return Page(entries, _c.tape_result_next_cursor(r))

    # frames and recording ----------------------------------------------
    def frames(self, id: str, start: int = 0, stop: Optional[int] = None) -> "FrameIterator":
        """Frames of a stored tape with ``start <= seq < stop`` (None: to
        the end), streamed where the backend can. NotFound if no such tape."""
        if start < 0 or (stop is not None and stop < 0):
            raise _invalid("frames: start and stop must be >= 0")
        if stop is not None and stop <= start:
            return FrameIterator(self, None)
        to_seq = SEQ_END if stop is None or stop > SEQ_END else stop - 1
        h = self._call(_c.tape_store_read_frames, id, start, to_seq)
        return FrameIterator(self, h)

    def record(self, name: Optional[str] = None, tags: Iterable[str] = (), id: Optional[str] = None,
               *, header: Optional[Tape] = None, **meta: Any) -> "Recording":
        """Start recording a tape (visible at once with status recording).
        Use it as a context manager: a normal exit finishes the tape; an
        exception leaves it recording with what was appended and says so in
        the exception's notes. ``meta`` keywords: description, session_id,
        protocol_version."""
        if header is None:
            header = Tape(name=name, tags=tags, id=id, **meta)
        with header._lock:
            h = self._call(_c.tape_store_record, header._handle())
            copy = header.copy()
        return Recording(self, h, copy)


def _query_json(terms: Dict[str, Any]) -> str:
    q = {}
    for key, value in terms.items():
        if value is None:
            continue
        if key in ("created_after", "created_before") and isinstance(value, _dt.datetime):
            value = _to_ms(value, key)
        elif key in ("tags_any", "tags_all") and not isinstance(value, str):
            value = list(value)
        q[key] = value
    return _json.dumps(q)


class _Child:
    """A handle that belongs to a store: valid while the store is open."""

    _what = "object"

    def __init__(self, store: Store, handle: Any, free: Any) -> None:
        self._store = store  # keeps the store alive
        self._lock = _threading.Lock()  # one call at a time on this handle
        self._token: Optional[int] = None if handle is None else store._adopt(handle, free)

    def _call(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            self._store._enter()
            try:
                h = None if self._token is None else self._store._child(self._token)
                if h is None:
                    raise _state(f"{self._what} is closed")
                _pending.exc = None
                return fn(h, *args)
            except TapeError as e:
                _rechain(e)
                raise
            finally:
                self._store._leave()

    def _drop(self) -> None:
        with self._lock:
            token, self._token = self._token, None
            if token is not None:
                self._store._release(token)

    def __del__(self) -> None:
        try:
            self._drop()
        except Exception:
            pass


class FrameIterator(_Child):
    """Frames of a stored tape (from Store.frames). Closed at the end, by
    close(), or when its store closes."""

    _what = "frame iterator"

    def __init__(self, store: Store, handle: Any) -> None:
        super().__init__(store, handle, _c.tape_frame_iter_free)
        self._done = handle is None
        self._rows: List[Any] = []  # copied ahead, a batch per C call
        self._next = 0

    def __iter__(self) -> "FrameIterator":
        return self

    def __next__(self) -> Frame:
        if self._next == len(self._rows):
            if self._done:
                raise StopIteration
            self._rows = self._call(_iter_frames, _ROWS_BATCH)
            self._next = 0
            if not self._rows:
                self._done = True
                self._drop()
                raise StopIteration
        if self._store._h is None:  # rows copied ahead die with the store
            self._rows = []
            self._store._enter()  # raises StateError: closed
        f = self._rows[self._next]
        self._next += 1
        return f

    def close(self) -> None:
        """Release the iterator early."""
        self._done = True
        self._rows, self._next = [], 0
        self._drop()

    def __enter__(self) -> "FrameIterator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class QueryIterator:
    """Entries of a query (from Store.query), fetched a page at a time."""

    def __init__(self, store: Store, query_json: str, limit: Optional[int], page_size: int) -> None:
        if page_size < 1:
            raise _invalid("query: page_size must be >= 1")
        if limit is not None and limit < 0:
            raise _invalid("query: limit must be >= 0")
        self._store = store
        self._query = _c.tape_query_parse(query_json)  # checked now: QueryError names the key
        self._left = limit
        self._page_size = page_size
        self._buf: List[Entry] = []
        self._cursor: Optional[str] = None
        self._last = False

    def __iter__(self) -> "QueryIterator":
        return self

    def __next__(self) -> Entry:
        while not self._buf:
            if self._last or self._left == 0:
                raise StopIteration
            n = self._page_size if self._left is None else min(self._page_size, self._left)
            q = _c.tape_query_with_cursor(self._query, self._cursor)
            qj = _json.loads(_c.tape_query_to_json(q))
            qj["limit"] = n
            page = self._store._page(_c.tape_query_parse(_json.dumps(qj)))
            self._buf = page.entries[::-1]
            self._cursor = page.next_cursor
            self._last = page.next_cursor is None
        if self._left is not None:
            self._left -= 1
        return self._buf.pop()


class Recording(_Child):
    """A recording in progress (from Store.record)."""

    _what = "recording"

    def __init__(self, store: Store, handle: Any, header: Tape) -> None:
        self._id: str = _c.tape_writer_id(handle)
        self._header = header  # what update_meta starts from
        self._appended = 0
        super().__init__(store, handle, _c.tape_writer_free)

    @property
    def id(self) -> str:
        """Id of the tape being recorded."""
        return self._id

    def append(self, direction: str, message: Any, *, ts_ms: Optional[int] = None,
               correlation_id: Optional[str] = None, transport: Any = None, flags: Any = None,
               invalid_json: bool = False, oversize: bool = False, prefix_bytes: int = 0) -> int:
        """Append a frame (see Tape.append); returns its sequence number."""
        seq = self._call(_append, None, direction, message, ts_ms, correlation_id, transport,
                         flags, invalid_json, oversize, prefix_bytes)
        self._appended += 1
        return seq

    def add_correlation(self, id: Optional[str], request_seq: int, response_seq: int,
                        rtt_ms: int = 0, status: Optional[str] = None) -> None:
        """Record a request/response pair in the recording."""
        self._call(_c.tape_writer_add_correlation, id, request_seq, response_seq, rtt_ms, status)

    def update_meta(self, **meta: Any) -> None:
        """Update what was learned mid-session: name, description, tags,
        session_id, protocol_version, transport, environment. Fields not
        named keep their values; None clears one."""
        allowed = {"name", "description", "tags", "session_id", "protocol_version",
                   "transport", "environment"}
        bad = sorted(set(meta) - allowed)
        if bad:
            raise _invalid(f"update_meta: unknown field {bad[0]!r}")
        new = self._header.copy()
        for key, value in meta.items():
            setattr(new, key, [] if key == "tags" and value is None else value)
        with new._lock:
            self._call(_c.tape_writer_update_meta, new._t)
        self._header = new

    def finish(self) -> None:
        """Finalize the tape; further appends raise StateError."""
        self._call(_c.tape_writer_finish)

    def close(self) -> None:
        """Release the writer; a recording not finished stays with status
        recording and the frames appended so far."""
        self._drop()

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if et is None:
            try:
                self.finish()
            finally:
                self.close()
            return
        self.close()
        if isinstance(ev, BaseException):
            ev.add_note(f"tapestore: tape {self._id!r} left with status recording "
                        f"({self._appended} frames appended)")


# ------------------------------------------------------------------ providers in Python
from .provider import Query, register_provider, unregister_provider  # noqa: E402
