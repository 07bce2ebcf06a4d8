"""Python providers used by the tests: DictStore implements every op (the
writer and ranged reads included) over a dict; MinimalStore only the
required ops, so the core's fallbacks run."""
import threading

import tapestore


class MinimalStore:
    """save, load, delete, list: nothing else."""

    def __init__(self, config):
        self.tapes = {}
        self.lock = threading.Lock()

    def save(self, tape):
        copy = tape.copy()  # the tape is lent for the call only
        with self.lock:
            self.tapes[copy.id] = copy

    def load(self, id):
        with self.lock:
            return self.tapes.get(id)

    def delete(self, id):
        with self.lock:
            if self.tapes.pop(id, None) is None:
                raise tapestore.NotFound(f"no tape {id!r}")

    def list(self, query):
        with self.lock:
            return list(self.tapes.values())


class _Recording:
    def __init__(self, store, header):
        self.store = store
        self.id = header.id
        self.lines = []
        self.header = header.copy()

    def _tape(self):
        # init line, the frames, then the header's correlation lines
        doc = self.header.to_jsonl().splitlines(keepends=True)
        text = b"".join(doc[:1] + self.lines + doc[1:])
        return tapestore.Tape.from_jsonl(text, self.header.to_meta_json())

    def _publish(self):
        with self.store.lock:
            if self.store.writers.get(self.id) is self:
                self.store.tapes[self.id] = self._tape()

    def append(self, frame, header):
        self.lines.append(frame.line if frame.line.endswith(b"\n") else frame.line + b"\n")
        self.header = header.copy()
        self._publish()

    def correlate(self, header, index):
        self.header = header.copy()
        self._publish()

    def end(self, header, finalized):
        self.header = header.copy()
        self._publish()
        with self.store.lock:
            if self.store.writers.get(self.id) is self:
                del self.store.writers[self.id]


class DictStore(MinimalStore):
    """Every op, natively."""

    def __init__(self, config):
        super().__init__(config)
        self.writers = {}
        self.opened = 0

    @classmethod
    def validate(cls, config):
        for key in config:
            if key not in ("ns", "path"):
                raise tapestore.ConfigError(f"dictstore: unknown key {key!r}")

    def open(self):
        self.opened += 1

    def close(self):
        pass

    def save(self, tape):
        with self.lock:
            if tape.id in self.writers:
                raise tapestore.Busy(f"tape {tape.id!r} is being recorded")
        super().save(tape)

    def delete(self, id):
        with self.lock:
            if id in self.writers:
                raise tapestore.Busy(f"tape {id!r} is being recorded")
        super().delete(id)

    def exists(self, id):
        with self.lock:
            return id in self.tapes

    def list(self, query):
        with self.lock:
            tapes = list(self.tapes.values())
        return (t for t in tapes if query.match(t))

    def search(self, query):
        with self.lock:
            tapes = list(self.tapes.values())
        return query.page([t for t in tapes if query.match(t)])

    def stats(self):
        with self.lock:
            tapes = list(self.tapes.values())
        return {"tape_count": len(tapes), "frame_count": sum(len(t) for t in tapes),
                "total_bytes": sum(t.stats.file_size_bytes for t in tapes)}

    def begin_recording(self, header):
        rec = _Recording(self, header)
        with self.lock:
            if header.id in self.writers:
                raise tapestore.Busy(f"tape {header.id!r} is being recorded")
            if header.id in self.tapes:
                raise tapestore.AlreadyExists(f"tape {header.id!r} exists")
            self.writers[header.id] = rec
            self.tapes[header.id] = rec._tape()
        return rec

    def frames(self, id, start, stop):
        t = self.load(id)
        if t is None:
            return None
        return [f for f in t.frames() if f.seq >= start and (stop is None or f.seq < stop)]

    def control(self, op, input):
        if op == "echo":
            return input
        raise tapestore.Unsupported(f"dictstore: unknown control op {op!r}")
