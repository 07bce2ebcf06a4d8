"""A tapestore provider that keeps tapes in S3, written with boto3 as a user would.

A tape at rest is the same two files the filesystem provider writes,
``<prefix><id>.jsonl`` and ``<prefix><id>.meta.json``, so ``aws s3 sync`` of a
prefix gives a directory the filesystem provider reads, and the reverse.

A recording is visible at once (its ``.jsonl`` holds the init line and its
``.meta.json`` says ``recording``). Frames are uploaded every ``flush_frames``
frames or ``flush_seconds`` seconds as chunk objects
``<prefix><id>.chunks/<first seq>.jsonl``, each holding only the lines added
since the previous flush, so a crash loses at most one interval. Loads in this
process include frames not flushed yet; other processes see up to the last
flush. Finishing writes the whole ``.jsonl`` and ``.meta.json`` and removes
the chunks.

Config keys: ``bucket`` (required), ``prefix``, ``endpoint_url``, ``region``,
``addressing_style`` ("path", "virtual" or "auto"), ``aws_access_key_id`` and
``aws_secret_access_key`` (otherwise the standard AWS environment and profile
chain), ``flush_frames`` (default 100), ``flush_seconds`` (default 1.0),
``list_workers`` (parallel meta GETs, default 8).
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Tuple

import boto3
import botocore.config
import botocore.exceptions

import tapestore

_KEYS = {
    "bucket": str, "prefix": str, "endpoint_url": str, "region": str,
    "addressing_style": str, "aws_access_key_id": str, "aws_secret_access_key": str,
    "flush_frames": int, "flush_seconds": (int, float), "list_workers": int,
}
_META = ".meta.json"
_JSONL = ".jsonl"
_CHUNKED = "tapestore-chunked"  # object metadata of a recording's .jsonl: frames in chunks


def _error(context: str, exc: BaseException) -> tapestore.TapeError:
    """One of our exceptions for a boto3/botocore failure, naming what was done."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "")
        text = f"s3: {context}: {code}: {err.get('Message', '')}".rstrip(": ")
        if code in ("NoSuchBucket",):
            return tapestore.ConfigError(text)
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                    "ExpiredToken", "InvalidToken"):
            return tapestore.ConfigError(text + " (check the credentials)")
        if code in ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                    "503"):
            return tapestore.Busy(text + " (throttled: retry later)")
        return tapestore.IOError(text)
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return tapestore.IOError(f"s3: {context}: cannot reach the endpoint: {exc}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return tapestore.ConfigError(f"s3: {context}: no credentials (config keys or the AWS "
                                     f"environment/profile chain)")
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return tapestore.IOError(f"s3: {context}: {exc}")
    raise exc


def _is_missing(exc: BaseException) -> bool:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
    return False


class S3Recording:
    """A recording in progress: every line in memory (for loads in this
    process and the final upload), the unflushed ones also in ``pending``."""

    def __init__(self, provider: "S3Provider", tape_id: str, init_line: bytes,
                 meta: bytes) -> None:
        self.provider = provider
        self.id = tape_id
        self.init_line = init_line
        self.meta = meta
        self.lines: List[bytes] = []
        self.pending: List[bytes] = []
        self.pending_first = 0  # seq of the first pending frame (chunk name)
        self.chunks: List[str] = []
        self.last_flush = time.monotonic()
        self.lock = threading.Lock()

    def _due(self) -> bool:
        p = self.provider
        return (len(self.pending) >= p.flush_frames
                or time.monotonic() - self.last_flush >= p.flush_seconds)

    def _flush(self, header: Any) -> None:
        if self.pending:
            key = self.provider._key(self.id, f".chunks/{self.pending_first:020d}.jsonl")
            self.provider._put(key, b"".join(self.pending), f"upload chunk of {self.id}")
            self.chunks.append(key)
            self.pending = []
        # Metadata learned since begin (names, tags) reaches readers here too.
        self.meta = header.to_meta_json()
        self.provider._put(self.provider._key(self.id, _META), self.meta,
                           f"update meta of {self.id}")
        self.last_flush = time.monotonic()

    def append(self, frame: Any, header: Any) -> None:
        line = frame.line + b"\n"
        with self.lock:
            if not self.pending:
                self.pending_first = frame.seq
            self.lines.append(line)
            self.pending.append(line)
            if self._due():
                self._flush(header)

    def correlate(self, header: Any, index: int) -> None:
        c = header.correlations[index]
        line = json.dumps({"type": "correlation", "id": c.id, "request_seq": c.request_seq,
                           "response_seq": c.response_seq, "rtt_ms": c.rtt_ms,
                           "status": c.status}, separators=(",", ":")).encode() + b"\n"
        with self.lock:
            if not self.pending:
                self.pending_first = header.stats.last_sequence + 1
            self.lines.append(line)
            self.pending.append(line)

    def document(self) -> bytes:
        with self.lock:
            return self.init_line + b"".join(self.lines)

    def end(self, header: Any, finalized: bool) -> None:
        p = self.provider
        with self.lock:
            body = self.init_line + b"".join(self.lines)
            meta = header.to_meta_json()
        p._put(p._key(self.id, _JSONL), body, f"write {self.id}")
        p._put(p._key(self.id, _META), meta, f"write meta of {self.id}")
        p._delete_keys(self.chunks + p._chunk_keys(self.id))
        p._recordings.pop(self.id, None)


class S3Provider:
    """The ``s3`` provider: one boto3 client per backend, shared by its threads."""

    concurrent = True  # boto3 clients are thread-safe; our own state is locked
    persistent = True  # tapes outlive the process (the suite's reopen case runs)

    @staticmethod
    def validate(config: Dict[str, Any]) -> None:
        for key, value in config.items():
            if key not in _KEYS:
                raise tapestore.ConfigError(f'config key "{key}": unknown (allowed: '
                                            f'{", ".join(sorted(_KEYS))})')
            if not isinstance(value, _KEYS[key]) or isinstance(value, bool):
                raise tapestore.ConfigError(f'config key "{key}": wrong type '
                                            f'{type(value).__name__}')
        if not config.get("bucket"):
            raise tapestore.ConfigError('config key "bucket": required')
        if config.get("addressing_style", "auto") not in ("path", "virtual", "auto"):
            raise tapestore.ConfigError('config key "addressing_style": "path", "virtual" or '
                                        '"auto"')
        if config.get("flush_frames", 1) < 1:
            raise tapestore.ConfigError('config key "flush_frames": must be >= 1')

    def __init__(self, config: Dict[str, Any]) -> None:
        self.bucket = config["bucket"]
        self.prefix = config.get("prefix", "")
        self.flush_frames = int(config.get("flush_frames", 100))
        self.flush_seconds = float(config.get("flush_seconds", 1.0))
        self.workers = int(config.get("list_workers", 8))
        session = boto3.session.Session(
            aws_access_key_id=config.get("aws_access_key_id"),
            aws_secret_access_key=config.get("aws_secret_access_key"),
            region_name=config.get("region", "us-east-1"))
        # One client per backend, created here and never inside an op:
        # clients are thread-safe, sessions are not (boto3 #1592).
        self.s3 = session.client(
            "s3", endpoint_url=config.get("endpoint_url"),
            config=botocore.config.Config(
                signature_version="s3v4",
                s3={"addressing_style": config.get("addressing_style", "auto")},
                retries={"max_attempts": 3, "mode": "standard"}))
        self._recordings: Dict[str, S3Recording] = {}
        self._meta_cache: Dict[str, Tuple[str, bytes]] = {}  # key -> (ETag, body)
        self._cache_lock = threading.Lock()

    # -------------------------------------------------------------- helpers

    def _key(self, tape_id: str, suffix: str) -> str:
        return f"{self.prefix}{tape_id}{suffix}"

    def _put(self, key: str, body: bytes, context: str,
             metadata: Optional[Dict[str, str]] = None) -> None:
        try:
            r = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body,
                                   Metadata=metadata or {})
        except Exception as exc:  # noqa: BLE001 - mapped to our classes
            raise _error(context, exc) from exc
        if key.endswith(_META):
            # What we wrote is what a listing would fetch: cache it under
            # the ETag S3 gave it, so listings after our own writes need
            # no GETs.
            with self._cache_lock:
                self._meta_cache[key] = (r.get("ETag", ""), body)

    def _get_object(self, key: str, context: str) -> Optional[Dict[str, Any]]:
        """The GET response with its body read, or None if absent."""
        try:
            r = self.s3.get_object(Bucket=self.bucket, Key=key)
            r["Body"] = r["Body"].read()
            return r
        except Exception as exc:  # noqa: BLE001
            if _is_missing(exc):
                return None
            raise _error(context, exc) from exc

    def _get(self, key: str, context: str) -> Optional[bytes]:
        r = self._get_object(key, context)
        return None if r is None else r["Body"]

    def _keys(self, prefix: str) -> Iterator[Dict[str, Any]]:
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                         Prefix=prefix):
                yield from page.get("Contents", [])
        except Exception as exc:  # noqa: BLE001
            raise _error(f"list {prefix or '(bucket)'}", exc) from exc

    def _chunk_keys(self, tape_id: str) -> List[str]:
        return sorted(o["Key"] for o in self._keys(self._key(tape_id, ".chunks/")))

    def _delete_keys(self, keys: List[str]) -> None:
        keys = sorted(set(keys))
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i:i + 1000]]
            try:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
            except Exception as exc:  # noqa: BLE001
                raise _error("delete objects", exc) from exc

    def _meta_of(self, obj: Dict[str, Any]) -> Optional[bytes]:
        """A meta document, from the cache when its ETag is unchanged."""
        key, etag = obj["Key"], obj.get("ETag", "")
        with self._cache_lock:
            hit = self._meta_cache.get(key)
        if hit is not None and hit[0] == etag:
            return hit[1]
        body = self._get(key, f"read {key}")
        if body is not None:
            with self._cache_lock:
                self._meta_cache[key] = (etag, body)
        return body

    # ------------------------------------------------------------------ ops

    def save(self, tape: Any) -> None:
        if tape.id in self._recordings:
            raise tapestore.Busy(f'tape "{tape.id}" is being recorded')
        # The .jsonl first: the meta is what listings find.
        self._put(self._key(tape.id, _JSONL), tape.to_jsonl(), f"write {tape.id}")
        self._put(self._key(tape.id, _META), tape.to_meta_json(), f"write meta of {tape.id}")

    def load(self, tape_id: str) -> Optional[tapestore.Tape]:
        rec = self._recordings.get(tape_id)
        if rec is not None:
            return tapestore.Tape.from_jsonl(rec.document(), rec.meta)
        obj = self._get_object(self._key(tape_id, _JSONL), f"read {tape_id}")
        if obj is None:
            return None
        body = obj["Body"]
        meta = self._get(self._key(tape_id, _META), f"read meta of {tape_id}")
        # A recording in another process: its frames so far are in chunks.
        # Its .jsonl says so in its object metadata, so a finished tape
        # costs no listing.
        if obj.get("Metadata", {}).get(_CHUNKED):
            for key in self._chunk_keys(tape_id):
                chunk = self._get(key, f"read {key}")
                if chunk:
                    body += chunk
        try:
            return tapestore.Tape.from_jsonl(body, meta)
        except tapestore.TapeError as exc:
            raise type(exc)(f"s3: tape {tape_id}: {exc}") from exc

    def delete(self, tape_id: str) -> None:
        if tape_id in self._recordings:
            raise tapestore.Busy(f'tape "{tape_id}" is being recorded')
        if not self.exists(tape_id):
            raise tapestore.NotFound(f'no tape "{tape_id}" in s3://{self.bucket}/{self.prefix}')
        self._delete_keys([self._key(tape_id, _JSONL), self._key(tape_id, _META)] +
                          self._chunk_keys(tape_id))
        with self._cache_lock:
            self._meta_cache.pop(self._key(tape_id, _META), None)

    def exists(self, tape_id: str) -> bool:
        if tape_id in self._recordings:
            return True
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(tape_id, _META))
            return True
        except Exception as exc:  # noqa: BLE001
            if _is_missing(exc):
                return False
            raise _error(f"look up {tape_id}", exc) from exc

    def list(self, query: Any) -> List[Any]:
        metas = [o for o in self._keys(self.prefix)
                 if o["Key"].endswith(_META) and "/" not in o["Key"][len(self.prefix):]]
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            bodies = list(pool.map(self._meta_of, metas))
        out: List[Any] = []
        for obj, body in zip(metas, bodies):
            tape_id = obj["Key"][len(self.prefix):-len(_META)]
            rec = self._recordings.get(tape_id)
            if rec is not None:  # this process knows more than S3 does
                out.append(tapestore.Tape.from_jsonl(rec.document(), rec.meta))
            elif body is not None:
                out.append(json.loads(body))
        return out

    def search(self, query: Any) -> Tuple[List[Any], Optional[str]]:
        """One page: the listing's metas (cached by ETag) through the core's
        pager, so order, cursor and limit mean what the core's do. A text
        term needs frames: only the tapes every other term matches are
        loaded (in parallel) and matched with it."""
        items = self.list(query)
        if query.get("text"):
            candidates = [m for m in items if query.match(m)]

            def full(item: Any) -> Optional[Any]:
                return self.load(item["tape_id"]) if isinstance(item, dict) else item
            with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
                tapes = list(pool.map(full, candidates))
            items = [t for t in tapes if t is not None and query.match(t)]
        return query.page(items)

    def begin_recording(self, header: Any) -> S3Recording:
        if header.id in self._recordings:
            raise tapestore.Busy(f'tape "{header.id}" is being recorded')
        if self.exists(header.id):
            raise tapestore.AlreadyExists(f'tape "{header.id}" already exists')
        doc = header.to_jsonl()
        init_line = doc.split(b"\n", 1)[0] + b"\n"
        meta = header.to_meta_json()
        rec = S3Recording(self, header.id, init_line, meta)
        self._put(self._key(header.id, _JSONL), init_line, f"start {header.id}",
                  metadata={_CHUNKED: "1"})
        self._put(self._key(header.id, _META), meta, f"start meta of {header.id}")
        self._recordings[header.id] = rec
        return rec


def register(registry: Any = None) -> None:
    """Register the provider under the name ``s3``."""
    tapestore.register_provider("s3", S3Provider, version=1,
                                description="tapes in S3 (boto3), same layout as filesystem",
                                registry=registry)


# Importing the module registers "s3", so `--plugin s3_provider.py` (the
# proxy, the tapestore command, python3 -m tapestore.conformance) finds it.
try:
    register()
except tapestore.AlreadyExists:
    pass  # imported twice under two names: the first registration stands
