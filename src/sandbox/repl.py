# rlm REPL driver: runs inside the sandbox, standard library only.
# Protocol: fd 3 carries host -> REPL frames, fd 4 REPL -> host frames; each frame is a
# 4-byte big-endian length followed by one JSON object. User output goes to fds 1 and 2.
import _json
import _thread
import mmap
import os
import struct
import sys

# Start-up is most of a sandbox's cost, so the driver imports only C modules at start: the
# protocol's JSON goes through `_json` directly (the `json` package pulls in `re` and `enum`,
# about 6 ms), locks through `_thread` (`threading`, about 3 ms, only in container mode).
# json, re, linecache and traceback are imported on first use.

if "site" not in sys.modules:
    # Started with -S (the bwrap backend): `site` and its .pth files cost about 2 ms of every
    # start; the interpreter's package directories are added here instead.
    _v = "python%d.%d" % sys.version_info[:2]
    for _d in (
        sys.prefix + "/local/lib/" + _v + "/dist-packages",
        sys.prefix + "/lib/python3/dist-packages",
        sys.prefix + "/lib/" + _v + "/dist-packages",
        sys.prefix + "/lib/" + _v + "/site-packages",
    ):
        if _d not in sys.path and os.path.isdir(_d):
            sys.path.append(_d)

_MUX = os.environ.pop("RLM_MUX", None) == "1"
if _MUX:
    # Container mode: only stdin/stdout/stderr cross the boundary. The protocol uses the
    # original stdin/stdout; the code's fds 1 and 2 become pipes this driver forwards to the
    # host as "output" frames.
    _cmd_fd, _msg_fd = os.dup(0), os.dup(1)
    _null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(_null, 0)
    os.close(_null)
    _pipes = {}
    for _fd, _name in ((1, "stdout"), (2, "stderr")):
        _r, _w = os.pipe()
        os.dup2(_w, _fd)
        os.close(_w)
        _pipes[_name] = _r
else:
    _cmd_fd, _msg_fd = 3, 4
_CMD = os.fdopen(_cmd_fd, "rb", buffering=0)
_MSG = os.fdopen(_msg_fd, "wb", buffering=0)
os.set_inheritable(_cmd_fd, False)
os.set_inheritable(_msg_fd, False)
_SEND_LOCK = _thread.allocate_lock()
# One host call at a time: a call's reply is read by the thread that made it.
_CALL_LOCK = _thread.allocate_lock()
_MAIN_THREAD = _thread.get_ident()
_DRIVER_FILE = globals().get("__file__", "<string>")
_CALL_SEQ = [0]
_CELL = [0, ""]
_STATE = {"final": None}
# Texts the host gives the driver for the model (they live in the host's prompt module).
_HINTS = {}


class _JsonContext:
    """What `_json.make_scanner` reads: the settings of `json.loads` without hooks."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo = {}


def _no_default(o):
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


try:
    _SCAN = _json.make_scanner(_JsonContext())
    _ENCODE = _json.make_encoder(None, _no_default, _json.encode_basestring_ascii, None, ":", ",", False, False, True)

    def _dumps(obj):
        return "".join(_ENCODE(obj, 0))

    def _loads(data):
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        end, n = 0, len(text)
        while end < n and text[end] in " \t\r\n":
            end += 1
        try:
            obj, end = _SCAN(text, end)
        except StopIteration as e:
            raise ValueError("invalid JSON at offset %d" % e.value) from None
        while end < n and text[end] in " \t\r\n":
            end += 1
        if end != n:
            raise ValueError("extra data at offset %d" % end)
        return obj

    _dumps({"check": [1, 2.5, None, True, "\u00e9"]})
except Exception:  # another interpreter whose _json differs: the json package then
    import json as _json_package

    _dumps, _loads = _json_package.dumps, _json_package.loads


def _send(obj):
    data = _dumps(obj).encode()
    with _SEND_LOCK:
        _MSG.write(struct.pack(">I", len(data)) + data)


def _forwarder_class():
    """Mux mode only (containers): the output forwarder, a thread."""
    import threading

    class _Forwarder(threading.Thread):
        """Mux mode: forwards one output pipe to the host. A barrier token written into the pipe
        after each cell marks the point where everything the cell wrote has been forwarded."""

        def __init__(self, name, fd, token):
            super().__init__(daemon=True)
            self.stream, self.fd, self.token = name, fd, token
            self.seen = threading.Event()

        def emit(self, data):
            if data:
                _send({"type": "output", "stream": self.stream, "data": data.decode("latin-1")})

        def run(self):
            buf = b""
            keep = len(self.token) - 1
            while True:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    self.emit(buf)
                    return
                buf += chunk
                while True:
                    i = buf.find(self.token)
                    if i < 0:
                        break
                    self.emit(buf[:i])
                    buf = buf[i + len(self.token):]
                    self.seen.set()
                if len(buf) > keep:
                    self.emit(buf[:-keep] if keep else buf)
                    buf = buf[-keep:] if keep else b""

    return _Forwarder


_FORWARDERS = []


def _barrier():
    """Mux mode: waits until everything written to fds 1 and 2 so far has been forwarded."""
    for f in _FORWARDERS:
        f.seen.clear()
        os.write(1 if f.stream == "stdout" else 2, f.token)
    for f in _FORWARDERS:
        f.seen.wait(10)


def _read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = _CMD.read(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _read_frame():
    (n,) = struct.unpack(">I", _read_exact(4))
    return _read_exact(n)


# Mux mode: host -> REPL frames are read by a daemon thread into this queue, so that the end
# of stdin is seen even while a block runs. In a container that EOF is the only sign that the
# host is gone (its docker client was killed): the driver then exits at once, which ends the
# container, instead of letting the block run on unsupervised.
_FRAMES = None


def _read_frames():
    try:
        while True:
            _FRAMES.put(_read_frame())
    except BaseException:
        pass
    os._exit(0)


def _recv():
    if _FRAMES is not None:
        return _loads(_FRAMES.get())
    return _loads(_read_frame())


def _host_call(name, args):
    """Sends a request to the host and waits for its reply (calls from several threads take
    turns: the host answers them one after the other anyway)."""
    with _CALL_LOCK:
        _CALL_SEQ[0] += 1
        call_id = _CALL_SEQ[0]
        sys.stdout.flush()
        sys.stderr.flush()
        _send({"type": "call", "id": _CELL[0], "token": _CELL[1], "call_id": call_id, "name": name, "args": args})
        while True:
            msg = _recv()
            if msg.get("type") == "reply" and msg.get("call_id") == call_id:
                if msg.get("error") is not None:
                    raise RuntimeError(msg["error"])
                return msg.get("value")


class Hit(dict):
    """One search match: keys line, text, match, offset (and doc for a list of documents);
    also readable as attributes (hit.text)."""

    def __missing__(self, key):
        if "record" in self:
            raise KeyError(
                "%r: this hit's record has the fields %s (and the hit: line, text, match, offset)"
                % (key, ", ".join(str(k) for k in self["record"]))
            )
        raise KeyError(
            "%r: a search hit has only the keys %s; the line itself is the string hit['text'] "
            "(take it apart, e.g. with re.search or hit['text'].split())"
            % (key, ", ".join(sorted(self)))
        )

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError as e:
            raise AttributeError(e.args[0]) from None

    def __repr__(self):
        # Printed, a hit shows where it is and what it says: its record's fields when the
        # data has records, else the line.
        head = {"line": self.get("line")}
        if "doc" in self:
            head["doc"] = self["doc"]
        rec = dict.get(self, "record")
        if isinstance(rec, dict):
            head.update(rec)
        else:
            head["text"] = self.get("text")
        return repr(head)

    __str__ = __repr__


class SearchResult:
    """The hits of ctx.search, in order: at most max_results of them (`total` is how many
    matches there are in all). Hits are built when they
    are read, so a search with many matches stays small. Printed, it shows its first hits."""

    def __init__(self, entries, total, make):
        self._entries = entries
        self._make = make
        self._cache = {}
        self.total = total

    def __len__(self):
        return len(self._entries)

    def __bool__(self):
        return bool(self._entries)

    def _get(self, i):
        hit = self._cache.get(i)
        if hit is None:
            hit = self._make(self._entries[i])
            if len(self._cache) < 4096:
                self._cache[i] = hit
        return hit

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(len(self._entries)))]
        n = len(self._entries)
        if not isinstance(i, int):
            raise TypeError("search result indices must be integers or slices, not %s" % type(i).__name__)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(
                "search result index out of range: it holds %d hit%s" % (n, "" if n == 1 else "s")
            )
        return self._get(i)

    def __iter__(self):
        for i in range(len(self._entries)):
            yield self._get(i)

    def __reversed__(self):
        for i in range(len(self._entries) - 1, -1, -1):
            yield self._get(i)

    def __add__(self, other):
        return list(self) + list(other)

    def __eq__(self, other):
        return isinstance(other, (list, SearchResult)) and list(self) == list(other)

    __hash__ = None

    def __repr__(self):
        n = len(self._entries)
        shown = [repr(h) for h in self[:_SEARCH_SHOWN]]
        body = "[" + ",\n ".join(shown) + "]"
        if n > _SEARCH_SHOWN:
            body += "  # the first %d of %d hits shown; len() is %d, loop or slice to see others" % (
                _SEARCH_SHOWN, n, n)
        if self.total > n:
            body += "  # %d of %d matches kept (max_results)" % (n, self.total)
        return body

    __str__ = __repr__


# How many hits printing a search result shows.
_SEARCH_SHOWN = 20

# Hits a search returns when no max_results is given (small models drown in long
# listings; counts come from ctx.count or .total, never from len of a capped result, and
# an answer computed from a capped result is refused once, which sends the model to
# ctx.records() or ctx.search_all()).
_SEARCH_CAP = 20


def _finished(entries, total, pattern, make):
    """A search result with its total, and the notes the model reads: nothing matched, or
    only some of the matches are in it (max_results)."""
    out = SearchResult(entries, total, make)
    if not entries and _HINTS.get("empty_search"):
        print(_HINTS["empty_search"].replace("{pattern}", repr(pattern)), file=sys.stderr)
    if total > len(entries):
        print(
            "[ctx.search(%r): this result holds %d of the %d matches (max_results). To count "
            "them use ctx.count(pattern); to go through all of them use ctx.search_all(pattern).]"
            % (pattern, len(entries), total)
        )
    return out


def _check_cap(max_results):
    if max_results is not None and (not isinstance(max_results, int) or max_results < 0):
        raise ValueError("ctx.search: max_results must be a whole number >= 0, or left out for every match")


def _number(v):
    """A CSV cell as int or float when it is plainly a number (no leading zeros: ids stay
    text)."""
    t = v.strip()
    if not t or len(t) > 30:
        return v
    body = t[1:] if t[0] in "+-" else t
    if body.isdigit() and (body == "0" or not body.startswith("0")):
        return int(t)
    head, dot, tail = body.partition(".")
    if dot and head.isdigit() and tail.isdigit() and (head == "0" or not head.startswith("0")):
        return float(t)
    return v


def _sniff(first_lines):
    """('jsonl', None) when the lines are JSON objects, ('csv', (header, delimiter)) for a
    delimited table with a header, else (None, None)."""
    lines = [l for l in first_lines if l.strip()][:6]
    if not lines:
        return None, None
    try:
        if all(isinstance(_loads(l), dict) for l in lines[:3]):
            return "jsonl", None
    except ValueError:
        pass
    import csv as _csv

    for d in (",", "\t", ";", "|"):
        counts = [len(next(_csv.reader([l], delimiter=d))) for l in lines]
        if counts[0] >= 2 and len(set(counts)) == 1 and len(lines) >= 2:
            header = next(_csv.reader([lines[0]], delimiter=d))
            if all(h.strip() and not _number(h) != h for h in header) and len(set(header)) == len(header):
                return "csv", ([h.strip() for h in header], d)
    return None, None


class ContextHandle:
    """Read-only, memory-mapped view of one context file. Offsets are bytes."""

    def __init__(self, name, fd=None):
        self.name = name
        self.path = "/context/" + name
        if fd is None:
            fd = os.open(self.path, os.O_RDONLY)
        try:
            self.size = os.fstat(fd).st_size
            self._mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if self.size else b""
        finally:
            os.close(fd)
        self._line_starts = None

    def __len__(self):
        return self.size

    def __repr__(self):
        return "ContextHandle(name=%r, size=%d bytes)" % (self.name, self.size)

    def _snap_start(self, i):
        while 0 < i < self.size and (self._mm[i] & 0xC0) == 0x80:
            i -= 1
        return i

    def _snap_end(self, i):
        while 0 < i < self.size and (self._mm[i] & 0xC0) == 0x80:
            i += 1
        return i

    def read(self, start, length):
        """Text of bytes [start, start+length), widened to whole UTF-8 characters."""
        if not isinstance(start, int) or not isinstance(length, int):
            raise TypeError("ctx.read(start, length) takes two integers (byte offsets)")
        if start < 0 or length < 0:
            raise ValueError("ctx.read: start and length must be >= 0 (got %d, %d)" % (start, length))
        if start > self.size:
            raise ValueError("ctx.read: start %d is past the end of the context (%d bytes)" % (start, self.size))
        end = min(self.size, start + length)
        s, e = self._snap_start(start), self._snap_end(end)
        return bytes(self._mm[s:e]).decode("utf-8", "replace")

    def head(self, n=2000):
        """The first n bytes as text."""
        return self.read(0, min(n, self.size))

    def tail(self, n=2000):
        """The last n bytes as text."""
        n = min(n, self.size)
        return self.read(self.size - n, n)

    def _index_lines(self):
        if self._line_starts is None:
            starts = [0]
            mm = self._mm
            find = mm.find if self.size else (lambda *a: -1)
            i = find(b"\n")
            while i != -1:
                starts.append(i + 1)
                i = find(b"\n", i + 1)
            if starts[-1] == self.size and len(starts) > 1:
                starts.pop()
            self._line_starts = starts
        return self._line_starts

    def line_count(self):
        """Number of lines."""
        return len(self._index_lines()) if self.size else 0

    def lines(self, first, last=None):
        """Lines first..last (1-based, inclusive) as one string."""
        if last is None:
            last = first
        if first < 1 or last < first:
            raise ValueError("ctx.lines(first, last): need 1 <= first <= last (got %r, %r)" % (first, last))
        starts = self._index_lines()
        if first > len(starts) or not self.size:
            return ""
        s = starts[first - 1]
        e = starts[last] if last < len(starts) else self.size
        return bytes(self._mm[s:e]).decode("utf-8", "replace")

    def _compile(self, what, pattern, ignore_case, text=False):
        if not isinstance(pattern, str):
            raise TypeError("ctx.%s: pattern must be a str (a Python regular expression)" % what)
        import re

        flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
        try:
            return re.compile(pattern if text else pattern.encode("utf-8"), flags)
        except re.error as e:
            raise ValueError("ctx.%s: invalid regular expression %r: %s" % (what, pattern, e)) from None

    def search(self, pattern, max_results=None, ignore_case=False):
        """Regex search over the whole context. Returns the first matches (at most
        max_results, default 20) as hits (dicts with keys offset (byte), line (1-based line number),
        match (the matched text), text (the whole line containing the match, at most 500
        characters), and the record's fields when the data has records); the result's
        `total` is the number of matches in all, and a note is printed when some are not in
        the result."""
        _check_cap(max_results)
        max_results = _SEARCH_CAP if max_results is None else max_results
        rx = self._compile("search", pattern, ignore_case)
        entries = []
        total = 0
        for m in self._iter(rx, pattern, ignore_case):
            total += 1
            if max_results is None or len(entries) < max_results:
                entries.append(m)
        return _finished(entries, total, pattern, lambda m: self._hit(*m))

    def search_all(self, pattern, ignore_case=False):
        """Every match, in order, as hits like ctx.search's (an iterator, no limit)."""
        rx = self._compile("search_all", pattern, ignore_case)
        return (self._hit(*m) for m in self._iter(rx, pattern, ignore_case))

    def count(self, pattern, ignore_case=False):
        """The number of lines that match the regular expression."""
        rx = self._compile("count", pattern, ignore_case)
        if not self.size:
            return 0
        if ignore_case and not pattern.isascii():
            return sum(1 for line in self.iter_lines() if self._compile("count", pattern, True, True).search(line))
        n, last_line_end = 0, -1
        mm = self._mm
        for m in rx.finditer(mm):
            if m.start() < last_line_end:
                continue
            n += 1
            e = mm.find(b"\n", m.start())
            last_line_end = self.size if e < 0 else e + 1
        return n

    def _kind(self):
        if not hasattr(self, "_format"):
            first = bytes(self._mm[: min(self.size, 65536)]).decode("utf-8", "replace").split("\n")[:7]
            self._format, self._csv = _sniff(first[:-1] if len(first) > 6 else first)
        return self._format

    def record(self, line):
        """The line parsed as a record (a dict) when the data is CSV with a header or JSON
        objects, one per line; else None."""
        kind = self._kind()
        if kind == "jsonl":
            try:
                r = _loads(line)
            except ValueError:
                return None
            return r if isinstance(r, dict) else None
        if kind == "csv":
            import csv as _csv

            header, d = self._csv
            cells = next(_csv.reader([line], delimiter=d), [])
            if len(cells) != len(header) or cells == header:
                return None
            return {h: _number(c) for h, c in zip(header, cells)}
        return None

    def records(self):
        """Every record as a dict (CSV with a header: one per row, numbers converted; JSON
        lines: one per object), in order (an iterator)."""
        if self._kind() is None:
            raise ValueError(
                "ctx.records(): this data is neither CSV with a header nor JSON objects one per "
                "line; go through ctx.iter_lines() and take each line apart with re or split()"
            )
        for line in self.iter_lines():
            r = self.record(line)
            if r is not None:
                yield r

    def _hit(self, off, line, match):
        hit = Hit(offset=off, line=line, match=match, text=self._line_at(off))
        if self._kind() is not None:
            rec = self.record(self._full_line_at(off))
            if rec is not None:
                for k, v in rec.items():
                    if isinstance(k, str) and k not in hit:
                        hit[k] = v
                hit["record"] = rec
        return hit

    def _full_line_at(self, off):
        mm = self._mm
        s = mm.rfind(b"\n", 0, off) + 1
        e = mm.find(b"\n", off)
        if e < 0:
            e = self.size
        return bytes(mm[s:min(e, s + (1 << 20))]).decode("utf-8", "replace").rstrip("\r")

    def iter_lines(self):
        """Every line, without its line break (an iterator)."""
        mm, start = self._mm, 0
        while start < self.size:
            e = mm.find(b"\n", start)
            if e < 0:
                e = self.size
            yield bytes(mm[start:e]).decode("utf-8", "replace").rstrip("\r")
            start = e + 1

    def __iter__(self):
        return self.iter_lines()

    def _iter(self, rx, pattern, ignore_case):
        if ignore_case and not pattern.isascii():
            yield from self._iter_unicode(pattern, ignore_case)
            return
        line, pos = 1, 0
        if not self.size:
            return
        for m in rx.finditer(self._mm):
            off = m.start()
            line += self._mm[pos:off].count(b"\n") if off > pos else 0
            pos = off
            yield off, line, m.group(0).decode("utf-8", "replace")

    def _iter_unicode(self, pattern, ignore_case):
        rx = self._compile("search", pattern, ignore_case, True)
        step = 8 << 20
        start, line = 0, 1
        while start < self.size:
            end = self._snap_end(min(self.size, start + step))
            text = bytes(self._mm[start:end]).decode("utf-8", "replace")
            for m in rx.finditer(text):
                off = start + len(text[: m.start()].encode())
                yield off, line + text.count("\n", 0, m.start()), m.group(0)
            line += text.count("\n")
            start = end

    def _line_at(self, off):
        """The line containing byte `off`, without its newline, at most 500 characters."""
        mm = self._mm
        s = mm.rfind(b"\n", 0, off) + 1
        e = mm.find(b"\n", off)
        if e < 0:
            e = self.size
        return bytes(mm[s:min(e, s + 2000)]).decode("utf-8", "replace")[:500]

    def chunks(self, size=100000, overlap=0):
        """Yields the context as text chunks of about `size` bytes, consecutive chunks
        sharing `overlap` bytes."""
        if size <= 0 or overlap < 0 or overlap >= size:
            raise ValueError("ctx.chunks(size, overlap): need size > 0 and 0 <= overlap < size")
        start = 0
        while start < self.size:
            end = self._snap_end(min(self.size, start + size))
            yield bytes(self._mm[start:end]).decode("utf-8", "replace")
            if end >= self.size:
                break
            nxt = self._snap_start(end - overlap)
            start = nxt if nxt > start else end


class ContextList(list):
    """The documents of a list context, one handle each; ctx.search, ctx.count and
    ctx.search_all work across all of them (each hit names its `doc`)."""

    def search(self, pattern, max_results=None, ignore_case=False):
        _check_cap(max_results)
        max_results = _SEARCH_CAP if max_results is None else max_results
        entries = []
        total = 0
        for i, h in enumerate(self):
            rx = h._compile("search", pattern, ignore_case)
            for m in h._iter(rx, pattern, ignore_case):
                total += 1
                if max_results is None or len(entries) < max_results:
                    entries.append((i, m))
        return _finished(entries, total, pattern, self._hit)

    def _hit(self, entry):
        i, m = entry
        h = self[i]
        hit = h._hit(*m)
        hit["doc"] = i
        hit["name"] = h.name
        return hit

    def search_all(self, pattern, ignore_case=False):
        for i, h in enumerate(self):
            for hit in h.search_all(pattern, ignore_case):
                hit["doc"] = i
                hit["name"] = h.name
                yield hit

    def count(self, pattern, ignore_case=False):
        return sum(h.count(pattern, ignore_case) for h in self)

    def iter_lines(self):
        for h in self:
            yield from h.iter_lines()

    def chunks(self, size=100000, overlap=0):
        """Every document's chunks, one document after the other."""
        for h in self:
            yield from h.chunks(size, overlap)

    def records(self):
        for i, h in enumerate(self):
            for r in h.records():
                yield r

    def line_count(self):
        return sum(h.line_count() for h in self)

    def __getattr__(self, name):
        if hasattr(ContextHandle, name):
            raise AttributeError(
                "ctx is a list of %d documents: use ctx[0].%s(...) for one of them, or loop: "
                "for doc in ctx: ..." % (len(self), name)
            )
        raise AttributeError("'ctx' (a list of documents) has no attribute %r" % name)

    @property
    def size(self):
        return sum(h.size for h in self)


def _answer_text(value):
    """A final answer as text: strings as they are; a float without float noise (a sum of
    money reads 25602.61, not 25602.609999999997; a whole number without '.0')."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e15:
        if value == int(value):
            return str(int(value))
        return format(value, ".12g")
    return str(value)


def FINAL(value, *more):
    """Ends the run with `value` (converted with str) as the answer; several values
    (FINAL(a, b, c)) are given as one list."""
    if _thread.get_ident() != _MAIN_THREAD:
        # A thread left running by an earlier block must not end a later one.
        raise RuntimeError(_HINTS.get("final_thread", "FINAL must be called from the block itself"))
    if more:
        value = [value, *more]
    _STATE["final"] = _answer_text(value)
    print("[final answer recorded]")


def FINAL_VAR(name):
    """Ends the run with the value of the REPL variable called `name`."""
    if not isinstance(name, str):
        raise TypeError("FINAL_VAR takes the variable's name as a string, e.g. FINAL_VAR('answer')")
    if name not in _G:
        raise NameError("FINAL_VAR: no variable named %r; assign it first or call FINAL(value)" % name)
    FINAL(_G[name])


def SHOW_VARS():
    """Lists the user variables of the REPL with their types and sizes."""
    rows = []
    for k, v in sorted(_G.items()):
        if k.startswith("_") or k in _RESERVED or type(v).__name__ in ("module", "function", "type"):
            continue
        try:
            size = len(v)
        except Exception:
            size = None
        rows.append("%s: %s%s" % (k, type(v).__name__, "" if size is None else " (len %d)" % size))
    print("\n".join(rows) if rows else "(no user variables)")


def llm_query(prompt, model=None):
    """Asks a sub-LLM one question and returns its answer as a string (a failure comes back
    as a string starting with 'Error:')."""
    if not isinstance(prompt, str):
        prompt = str(prompt)
    return _host_call("llm_query", {"prompt": prompt, "model": model})


def llm_query_batched(prompts, model=None):
    """Asks a sub-LLM several questions concurrently; answers come back in prompt order.
    A failed item yields a string starting with 'Error:' in its slot."""
    prompts = [p if isinstance(p, str) else str(p) for p in prompts]
    return _host_call("llm_query_batched", {"prompts": prompts, "model": model})


def _context_arg(context):
    if context is None or isinstance(context, str):
        return context
    if isinstance(context, (list, tuple)):
        return [c if isinstance(c, str) else str(c) for c in context]
    return str(context)


def rlm_query(prompt, context=None):
    """Hands a sub-task to a child run (its own REPL; `context` is its data) and returns its
    final answer. At the depth limit this is a plain llm_query."""
    if not isinstance(prompt, str):
        prompt = str(prompt)
    return _host_call("rlm_query", {"prompt": prompt, "context": _context_arg(context)})


def rlm_query_batched(prompts, contexts=None):
    """Several rlm_query calls at once; answers come back in prompt order. A failed item
    yields a string starting with 'Error:' in its slot."""
    prompts = [p if isinstance(p, str) else str(p) for p in prompts]
    if contexts is not None:
        contexts = [_context_arg(c) for c in contexts]
        if len(contexts) != len(prompts):
            raise ValueError("rlm_query_batched: contexts must be as long as prompts")
    return _host_call("rlm_query_batched", {"prompts": prompts, "contexts": contexts})


def _tool_function(name, params, doc):
    """A Python function for the host tool `name`: positional arguments in `params` order,
    or keywords; it returns the tool's text (a failure is a string starting with 'Error:')."""

    def tool(*args, **kwargs):
        if len(args) > len(params):
            raise TypeError("%s() takes at most %d positional argument(s)" % (name, len(params)))
        call = dict(zip(params, args))
        for k, v in kwargs.items():
            if k in call:
                raise TypeError("%s() got multiple values for argument %r" % (name, k))
            call[k] = v
        return _host_call("tool", {"name": name, "args": call})

    tool.__name__ = tool.__qualname__ = name
    tool.__doc__ = doc
    return tool


def _add_context(index, docs, is_list):
    """A session's context number `index` (called by the host): its documents written to
    private files under /tmp and mapped like any context; binds ctx_<index> and
    context_<index>, and ctx and context to it."""
    handles = []
    for j, text in enumerate(docs):
        path = "/tmp/.rlm_context_%d_%d" % (index, j)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        handles.append(ContextHandle("context_%d_%d" % (index, j), os.open(path, os.O_RDONLY)))
        os.unlink(path)
    if is_list:
        c, t = ContextList(handles), [h.read(0, h.size) for h in handles]
    else:
        c, t = handles[0], handles[0].read(0, handles[0].size)
    for name, v in (("ctx_%d" % index, c), ("context_%d" % index, t), ("ctx", c), ("context", t)):
        _RESERVED[name] = v
        _G[name] = v


def _define_tools(text):
    """Defines the host tools the host registered for this run (called by the host, once
    per REPL)."""
    for t in _loads(text):
        f = _tool_function(t["name"], list(t["params"]), t.get("doc") or "")
        _RESERVED[t["name"]] = f
        _G[t["name"]] = f


def _extend_history(text, held=0):
    """Appends messages of the conversation (called by the host when it compacts the history;
    all of them were already sent to the model) and binds `history` to a fresh copy: a list of
    {'role', 'content'} dicts, oldest first. Changing the copy changes nothing else. `held`:
    how many messages the host believes this REPL holds already; a REPL that holds others (it
    was restarted and lost them) refuses, and the host sends the whole history again."""
    if len(_HISTORY) != held:
        raise RuntimeError("history holds %d messages, not %d" % (len(_HISTORY), held))
    _HISTORY.extend(_loads(text))
    h = [{"role": m["role"], "content": m["content"]} for m in _HISTORY]
    _RESERVED["history"] = h
    _G["history"] = h


_G = {"__name__": "__main__", "__builtins__": __builtins__}
_RESERVED = {}
_HISTORY = []


def _install_open(handles):
    """Lets `open('<context name>')` (or `/context/<name>`) read the context even where it
    is not a file in this sandbox: models often try that first."""
    import builtins
    import io

    by_name = {h.name: h for h in handles}
    real_open = builtins.open

    def rlm_open(file, mode="r", *args, **kwargs):
        if isinstance(file, str):
            base = file[len("/context/"):] if file.startswith("/context/") else file
            h = by_name.get(base) if "/" not in base else None
            if h is not None and not os.path.exists(file):
                if any(c in mode for c in "wax+"):
                    raise PermissionError("the context %r is read-only" % base)
                raw = io.BytesIO(bytes(h._mm[:]) if h.size else b"")
                return raw if "b" in mode else io.TextIOWrapper(raw, encoding=kwargs.get("encoding") or "utf-8", errors="replace")
        return real_open(file, mode, *args, **kwargs)

    builtins.open = rlm_open


def _receive_binding(fd):
    """A pooled REPL's context: descriptors (in batches, each on one b"F") and then the JSON
    of names and kinds, read to the end of the socket, which the host then closes."""
    import _socket
    import array

    s = _socket.socket(fileno=fd)
    data, fds = b"", []
    try:
        while True:
            msg, anc, _flags, _addr = s.recvmsg(65536, _socket.CMSG_SPACE(253 * 4))
            for level, kind, payload in anc:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(payload[: len(payload) - len(payload) % a.itemsize])
                    fds.extend(a)
            if not msg:
                break
            data += msg
    finally:
        s.close()
    bound = _loads(data.lstrip(b"F") or b"{}")
    bound["fds"] = fds
    return bound


def _setup(spec):
    _HINTS.update(spec.get("hints") or {})
    names, fds = spec.get("names", []), spec.get("fds", [])
    handles = [ContextHandle(n, fds[i] if fds else None) for i, n in enumerate(names)]
    # Nothing of the host stays reachable through inherited descriptors (mappings survive).
    keep = sorted({_cmd_fd, _msg_fd} | (set(_pipes.values()) if _MUX else set()))
    lo = 5
    for k in keep + [65536]:
        if k >= lo:
            os.closerange(lo, k)
            lo = k + 1
    _install_open(handles)
    _RESERVED.update(
        FINAL=FINAL, final=FINAL, FINAL_VAR=FINAL_VAR, SHOW_VARS=SHOW_VARS,
        llm_query=llm_query, llm_query_batched=llm_query_batched,
        rlm_query=rlm_query, rlm_query_batched=rlm_query_batched,
    )
    if handles:
        inline = spec.get("inline", False)
        if spec.get("list"):
            _RESERVED["ctx"] = ContextList(handles)
            if inline:
                _RESERVED["context"] = [h.read(0, h.size) for h in handles]
        else:
            _RESERVED["ctx"] = handles[0]
            if inline:
                _RESERVED["context"] = handles[0].read(0, handles[0].size)
    _G.update(_RESERVED)
    # The standard modules models reach for without importing them. Those the driver has not
    # loaded anyway are imported on first use (about 3 ms of every start saved).
    import itertools, math

    for m in (itertools, math):
        _G.setdefault(m.__name__, m)
    for name in ("collections", "csv", "datetime", "json", "re", "statistics"):
        _G.setdefault(name, _LazyModule(name))


class _LazyModule(type(sys)):
    """A standard module imported when its first attribute is read; the name then refers to
    the module itself."""

    def __getattr__(self, attr):
        name = type(sys).__getattribute__(self, "__name__")
        module = __import__(name)
        if _G.get(name) is self:
            _G[name] = module
        return getattr(module, attr)


def _name_hint(name, code=""):
    """After a NameError: the provided name the code probably meant, or, for a name the
    code assigns, that the assignment never ran."""
    import re

    if _HINTS.get("unassigned") and re.search(
        r"(^|[^\w.])%s\s*(=[^=]|,[^\n]*=[^=])|\bfor\s+[^\n]*\b%s\b[^\n]*\bin\b" % (re.escape(name), re.escape(name)),
        code,
        re.MULTILINE,
    ):
        sys.stderr.write(_HINTS["unassigned"].replace("{name}", name) + "\n")
        return
    close = [k for k in _RESERVED if k.lower() == name.lower() and k != name]
    if close and _HINTS.get("case"):
        sys.stderr.write(_HINTS["case"].replace("{name}", close[0]) + "\n")
        return
    if "ctx" in _RESERVED and hasattr(_RESERVED["ctx"], name) and _HINTS.get("method"):
        sys.stderr.write(_HINTS["method"].replace("{name}", name) + "\n")
        return
    import difflib

    close = difflib.get_close_matches(name, [k for k in _RESERVED if not k.startswith("_")], n=1, cutoff=0.75)
    if close and _HINTS.get("similar"):
        sys.stderr.write(_HINTS["similar"].replace("{name}", close[0]) + "\n")


# Every cell's source by name, for tracebacks. They reach `linecache` once something imports
# it (a traceback, `inspect`): importing it at every start would also import `re` and `enum`.
_SOURCES = {}


def _share_sources(load=False):
    """Puts the cells' sources into `linecache` when it is loaded (or, with `load`, loads it)."""
    lc = sys.modules.get("linecache")
    if lc is None and load:
        import linecache as lc
    if lc is not None:
        for name, code in _SOURCES.items():
            if name not in lc.cache:
                lc.cache[name] = (len(code), None, code.splitlines(True), name)


def _run_cell(code, cell_id):
    # The C parser's tree through `compile` (what `ast.parse` does), without importing the
    # `ast` module (about 2 ms of every sandbox's start-up).
    import _ast

    name = "<cell %d>" % cell_id
    _SOURCES[name] = code
    _share_sources()
    tree = compile(code, name, "exec", _ast.PyCF_ONLY_AST)
    last = None
    if tree.body and isinstance(tree.body[-1], _ast.Expr):
        last = _ast.Expression(tree.body.pop().value)
    exec(compile(tree, name, "exec"), _G)
    if last is not None:
        value = eval(compile(last, name, "eval"), _G)
        if value is not None:
            # Text is shown as text (its lines readable), anything else as its repr.
            print(value if isinstance(value, str) else repr(value))


def _receive_shipped(count):
    """Docker on a remote engine: the context files arrive on the protocol, each as a frame
    {"type": "file", "size": N} and then frames of its bytes, into the tmpfs at /ctx. Each is
    kept open and unlinked (nothing at a path for the code to change); their descriptors."""
    fds = []
    for i in range(count):
        head = _loads(_read_frame())
        left = int(head["size"])
        path = "/ctx/%d" % i
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)
        while left > 0:
            chunk = memoryview(_read_frame())
            left -= len(chunk)
            while chunk:
                chunk = chunk[os.write(fd, chunk):]
        fds.append(fd)
    return fds


def _main():
    spec = _loads(os.environ.pop("RLM_CONTEXT_SPEC", "{}"))
    if os.environ.pop("RLM_SHIP", None) == "1":
        spec["fds"] = _receive_shipped(len(spec.get("names") or []))
    if _MUX:
        import threading

        token = b"\x00rlm-barrier-" + os.urandom(8).hex().encode() + b"\x00"
        forwarder = _forwarder_class()
        for name, fd in _pipes.items():
            f = forwarder(name, fd, token)
            f.start()
            _FORWARDERS.append(f)
        global _FRAMES
        from _queue import SimpleQueue

        _FRAMES = SimpleQueue()
        threading.Thread(target=_read_frames, name="rlm-frames", daemon=True).start()
    ready = {"type": "ready", "python": sys.version.split()[0], "kernel": os.uname().release}
    if spec.get("deferred") is not None:
        # Pooled: ready before any context; the context arrives when a session takes it.
        _send(ready)
        spec.update(_receive_binding(spec.pop("deferred")))
        # The limits a REPL started for this session would have had; lowering is always
        # allowed, and no code of the session has run yet.
        limits = spec.pop("limits", None) or {}
        if limits:
            import resource

            for name, value in limits.items():
                which = getattr(resource, name)
                hard = resource.getrlimit(which)[1]
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)
                resource.setrlimit(which, (value, value))
    _setup(spec)
    _send(ready)
    while True:
        try:
            msg = _recv()
        except EOFError:
            return
        if msg.get("type") != "exec":
            continue
        _CELL[0], _CELL[1] = msg["id"], msg.get("token", "")
        _STATE["final"] = None
        ok, memory_error = True, False
        try:
            _run_cell(msg["code"], msg["id"])
        except SystemExit as e:
            print("SystemExit(%r) ignored: the REPL keeps running" % (e.code,), file=sys.stderr)
        except MemoryError:
            ok, memory_error = False, True
            print("MemoryError: the memory limit of the sandbox was reached", file=sys.stderr)
        except BaseException as e:  # noqa: B902 - everything becomes an observation
            import traceback

            _share_sources(load=True)
            ok = False
            tb = traceback.extract_tb(e.__traceback__)
            tb = [f for f in tb if f.filename not in (_DRIVER_FILE, "<string>") and not f.filename.endswith("repl.py")]
            sys.stderr.write("Traceback (most recent call last):\n")
            sys.stderr.write("".join(traceback.format_list(tb)))
            sys.stderr.write("".join(traceback.format_exception_only(type(e), e)))
            if isinstance(e, NameError) and getattr(e, "name", None):
                _name_hint(e.name, msg["code"])
        _share_sources()
        for k, v in _RESERVED.items():
            if _G.get(k) is not v:
                _G[k] = v
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        if _MUX:
            _barrier()
        _send({"type": "done", "id": msg["id"], "token": _CELL[1], "ok": ok, "final_answer": _STATE["final"],
               "memory_error": memory_error})


if __name__ == "__main__":
    _main()
