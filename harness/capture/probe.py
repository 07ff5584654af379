"""The tracemalloc probe: runs a Python program in this process, traced, with a control endpoint on the side.

    python -m harness.capture.probe [--nframe N] -- -m targets.eager --port 0 ...
    python -m harness.capture.probe [--nframe N] -- python path/to/server.py --flag ...

tracemalloc starts before the program is imported, then the program runs in the main thread through ``runpy``
with ``sys.argv`` as it expects. A control endpoint answers in a daemon thread (so it answers while the
program's event loop is busy), bound to 127.0.0.1 on a free port and guarded by the token the harness puts in
``STREAM_HARNESS_PROBE_TOKEN`` (requests without it get 403). Its port is written to the file named by
``STREAM_HARNESS_PROBE_PORT_FILE`` and printed on stderr. Routes (all need ``Authorization: Bearer TOKEN``):

    GET  /traced      {"current_bytes", "peak_bytes", ...}: tracemalloc.get_traced_memory(), cheap
    POST /snapshot    {"snapshot_path", "census_path"}: dump a tracemalloc snapshot, then take a census of live
                      objects (by type, what containers hold, and who holds the biggest containers) as JSON
    POST /reset-peak  tracemalloc.reset_peak()

Started by hand without a token, the probe makes one up and prints it with its port.

A snapshot and its census stall the program for tens to hundreds of milliseconds (they hold the GIL): take them
at phase boundaries, never on a hot path. The analysis runs out of process (harness.analyse.growth).

Census: ``gc.get_objects()`` sees only containers; bytes and str are not among them, and they are what a
streaming server buffers. So each container is also charged with the leaves (untracked objects) it refers to,
each leaf's size shared among its referrers by reference count. For the containers holding the most (and
growing the most since the previous census), the biggest instances are traced one or two hops back with
``gc.get_referrers`` to a name such as ``targets.relay.ByteBuffer._chunks``, within a time budget.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hmac
import http.server
import importlib.util
import json
import os
import re
import runpy
import secrets
import sys
import threading
import time
import tracemalloc
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.errors import UsageError

__all__ = [
    "PORT_FILE_ENV",
    "TOKEN_ENV",
    "Program",
    "add_probe_arguments",
    "main",
    "parse_program",
    "run",
    "run_probe",
    "take_census",
]

TOKEN_ENV = "STREAM_HARNESS_PROBE_TOKEN"
PORT_FILE_ENV = "STREAM_HARNESS_PROBE_PORT_FILE"

_PYTHON_WORD = re.compile(r"^python(\d+(\.\d+)?)?$")
_HARMLESS_PYTHON_OPTIONS = {"-u", "-B"}
_CENSUS_FORMAT = 1
_TOP_TYPES = 300
_TOP_HELD = 300
_HOLDER_TYPES = 6
"""Container types traced back to who holds them: the biggest holders now, and the fastest growing."""
_HOLDER_SAMPLES = 3
"""Instances of each such type traced back (the biggest ones)."""
_HOLDER_MIN_BYTES = 1 << 20
"""Container types holding (or grown by) less than this in all are not traced back: nothing to explain."""
_HOLDER_SCAN = 20000
"""Instances of a chosen type sized one by one to find the biggest."""
_HOLDER_BUDGET_S = 1.0
_NOT_TRACED_BACK = (type, types.FunctionType, types.ModuleType, types.CodeType)
"""What imports build (held by modules and classes): never the holder a growth question is about."""


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


def _check_module(name: str, command: Sequence[str]) -> None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as error:
        raise _not_python(command, f"cannot find module {name!r}: {error}") from error
    if spec is None:
        raise _not_python(command, f"no module named {name!r}")


# -- census -------------------------------------------------------------------------------------------------------


def _type_name(kind: type) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


_SKIPPED_LEAVES = frozenset({type(None), bool, int, float, type(NotImplemented), type(Ellipsis)})
"""Leaves never worth counting: shared singletons and numbers (their reference counts are big numbers, and
every big number is one more allocation for tracemalloc to trace)."""


def _leaf_sizes(leaves: list[Any], base: int) -> dict[type, list[int]]:
    """Sizes of ``leaves`` by type, each divided by its estimated number of referrers.

    Written to allocate as little as possible: under tracemalloc every allocation is traced, and a census that
    allocates per object runs ten times slower.
    """
    getsizeof, getrefcount = sys.getsizeof, sys.getrefcount
    unique = base + 1
    by_kind: dict[type, list[int]] = {}
    for leaf in leaves:
        kind = type(leaf)
        if kind in _SKIPPED_LEAVES:
            continue
        sizes = by_kind.get(kind)
        if sizes is None:
            sizes = by_kind[kind] = []
        size = getsizeof(leaf, 0)
        references = getrefcount(leaf)
        if references > unique:
            size //= references - base
        sizes.append(size)
    return by_kind


def _refcount_baseline() -> int:
    """References the census itself holds on a leaf while sizing it (calibrated, not assumed)."""
    leaves = [bytes(2**20)]  # owned by nobody: every reference to it is one the census holds
    (sizes,) = _leaf_sizes(leaves, 0).values()
    return sys.getsizeof(leaves[0]) // sizes[0]  # the references seen: all the census's own


_BASELINE = _refcount_baseline()


def _attribute_of(owner: object, value: object) -> str | None:
    """The name under which ``owner`` refers to ``value``: an instance attribute, a slot, or a local."""
    if isinstance(owner, types.FrameType | types.CoroutineType | types.GeneratorType | types.AsyncGeneratorType):
        frame = owner if isinstance(owner, types.FrameType) else _frame_of(owner)
        if frame is not None:
            for name, local in frame.f_locals.items():
                if local is value:
                    return name
        return None
    with contextlib.suppress(Exception):
        # (reading __dict__ materialises a managed dict on 3.11+: a few hundred bytes, on a handful of objects)
        for name, attribute in object.__getattribute__(owner, "__dict__").items():
            if attribute is value:
                return str(name)
    for kind in type(owner).__mro__:
        for slot in kind.__dict__.get("__slots__", ()):
            with contextlib.suppress(Exception):
                if object.__getattribute__(owner, slot) is value:
                    return str(slot)
    return None


def _frame_of(owner: Any) -> types.FrameType | None:
    for name in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(owner, name, None)
        if isinstance(frame, types.FrameType):
            return frame
    return None


def _referrers(value: object, ignore: set[int]) -> list[Any]:
    # No comprehension here: in 3.11 it would be a closure, and its cell would show up as a referrer.
    found = []
    for ref in gc.get_referrers(value):
        if id(ref) not in ignore:
            found.append(ref)  # noqa: PERF401 - see above
    return found


def _describe_holder(value: object, ignore: set[int]) -> str:
    """Who refers to ``value``: 'pkg.Owner.attr', 'module pkg global name', 'file:func local x', or a type."""
    referrers = _referrers(value, ignore)
    ignore.add(id(referrers))
    try:
        for ref in referrers:
            if isinstance(ref, types.FrameType | types.CoroutineType | types.GeneratorType | types.AsyncGeneratorType):
                name = _attribute_of(ref, value)
                code = ref.f_code if isinstance(ref, types.FrameType) else getattr(_frame_of(ref), "f_code", None)
                where = f"{Path(code.co_filename).name}:{code.co_qualname}" if code else type(ref).__name__
                return f"{where} local {name}" if name else where
        for ref in referrers:
            if isinstance(ref, dict):
                return _describe_dict_entry(ref, value, ignore)
        for ref in referrers:
            if isinstance(ref, list | tuple | set | frozenset) or type(ref).__name__ == "deque":
                continue
            if isinstance(ref, types.CellType):
                return "closure cell"
            name = _attribute_of(ref, value)
            if name is not None:
                return f"{_type_name(type(ref))}.{name}"
        for ref in referrers:
            if isinstance(ref, types.ModuleType) and ref.__dict__ is value:
                return f"module {ref.__name__} namespace"
            return f"item of {_type_name(type(ref))}"
        return "(no referrer found: held from C or the stack)"
    finally:
        ignore.discard(id(referrers))
        referrers.clear()


def _describe_dict_entry(mapping: dict[Any, Any], value: object, ignore: set[int]) -> str:
    key = "?"
    for name, item in mapping.items():
        if item is value:
            key = str(name)
            break
    owners = _referrers(mapping, ignore)
    ignore.add(id(owners))
    try:
        for owner in owners:
            if isinstance(owner, types.ModuleType) and owner.__dict__ is mapping:
                return f"module {owner.__name__} global {key}"
            with contextlib.suppress(Exception):
                if object.__getattribute__(owner, "__dict__") is mapping:
                    return f"{_type_name(type(owner))}.{key}"
        return f"dict[{key!r}]"
    finally:
        ignore.discard(id(owners))
        owners.clear()


def _held_by_instance(obj: Any) -> int:
    is_tracked, getsizeof = gc.is_tracked, sys.getsizeof
    return sum(getsizeof(ref, 0) for ref in gc.get_referents(obj) if not is_tracked(ref))


_previous_held: dict[str, int] = {}
"""Held bytes by container type at the previous census of this process: what 'growing' is measured against."""


def take_census(budget_s: float = _HOLDER_BUDGET_S) -> dict[str, Any]:
    """Live objects by type, leaves held by container type, and who holds the biggest growing containers.

    Leaves (objects the gc does not track: bytes, str, numbers...) are counted once per reference from a
    container, their size shared among their referrers by reference count (exact for a leaf with one owner,
    such as a chunk in a deque; approximate for shared ones).
    """
    started = time.perf_counter()
    gc.collect()
    objects = gc.get_objects()
    by_type: dict[type, list[Any]] = {}
    for obj in objects:
        group = by_type.get(type(obj))
        if group is None:
            group = by_type[type(obj)] = []
        group.append(obj)
    is_tracked, getsizeof = gc.is_tracked, sys.getsizeof
    totals: dict[type, list[int]] = {}
    held: dict[tuple[type, type], tuple[int, int]] = {}
    held_by_container: dict[type, int] = {}
    for kind, group in by_type.items():
        own = totals.setdefault(kind, [0, 0])
        own[0] += len(group)
        own[1] += sum(getsizeof(obj, 0) for obj in group)
        leaves = [ref for ref in gc.get_referents(*group) if not is_tracked(ref) and not isinstance(ref, type)]
        for leaf_kind, sizes in _leaf_sizes(leaves, _BASELINE).items():
            count, size = len(sizes), sum(sizes)
            held[(kind, leaf_kind)] = (count, size)
            held_by_container[kind] = held_by_container.get(kind, 0) + size
            leaf_total = totals.setdefault(leaf_kind, [0, 0])
            leaf_total[0] += count
            leaf_total[1] += size
        leaves.clear()
    counted_s = time.perf_counter() - started

    # Who holds the containers that hold the most, and those that grew the most since the previous census.
    names = {kind: _type_name(kind) for kind in held_by_container}
    biggest = sorted(held_by_container, key=lambda kind: -held_by_container[kind])
    grown = {kind: size - _previous_held.get(names[kind], 0) for kind, size in held_by_container.items()}
    growing = sorted(grown, key=lambda kind: -grown[kind])
    chosen: list[type] = []
    for kind in [*biggest[: _HOLDER_TYPES // 2], *growing[: _HOLDER_TYPES // 2], *biggest]:
        big = held_by_container[kind] >= _HOLDER_MIN_BYTES or grown[kind] >= _HOLDER_MIN_BYTES
        if kind not in chosen and big and not issubclass(kind, _NOT_TRACED_BACK):
            chosen.append(kind)
        if len(chosen) >= _HOLDER_TYPES:
            break
    holders: list[dict[str, Any]] = []
    ignore = {id(objects), id(by_type), *(id(group) for group in by_type.values())}
    truncated = False
    deadline = started + counted_s + budget_s
    for kind in chosen:
        group = by_type[kind]
        if time.perf_counter() > deadline:
            truncated = True
            break
        sized: list[tuple[int, int]] = []
        for index, obj in enumerate(group[:_HOLDER_SCAN]):
            sized.append((_held_by_instance(obj), index))
            if index % 256 == 255 and time.perf_counter() > deadline:
                break
        truncated = truncated or len(sized) < len(group)
        sized.sort(reverse=True)
        for size, index in sized[:_HOLDER_SAMPLES]:
            if time.perf_counter() > deadline:
                truncated = True
                break
            holders.append(
                {"container": names[kind], "held_bytes": size, "held_by": _describe_holder(group[index], ignore)}
            )
    _previous_held.clear()
    _previous_held.update({names[kind]: size for kind, size in held_by_container.items()})
    result = {
        "format": _CENSUS_FORMAT,
        "pid": os.getpid(),
        "t": time.time(),
        "gc_objects": len(objects),
        "types": _top_rows(
            ({"type": _type_name(kind), "count": count, "bytes": size} for kind, (count, size) in totals.items()),
            _TOP_TYPES,
        ),
        "held": _top_rows(
            (
                {"container": names[container], "leaf": _type_name(leaf), "count": count, "bytes": size}
                for (container, leaf), (count, size) in held.items()
            ),
            _TOP_HELD,
        ),
        "holders": holders,
        "holders_truncated": truncated,
        "count_s": round(counted_s, 4),
        "took_s": round(time.perf_counter() - started, 4),
    }
    for group in by_type.values():
        group.clear()
    objects.clear()
    return result


def _top_rows(rows: Iterable[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: -int(row["bytes"]))[:limit]


# -- control endpoint ---------------------------------------------------------------------------------------------


def _snapshot(snapshot_path: Path, census_path: Path | None) -> dict[str, Any]:
    started = time.perf_counter()
    current, peak = tracemalloc.get_traced_memory()
    # Unfiltered: Snapshot.filter_traces is a Python loop (about 1 s for 80,000 traces) and would stall the
    # program for nothing; harness.analyse.growth drops the probe's and tracemalloc's own frames out of process.
    snapshot = tracemalloc.take_snapshot()
    snapshot_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.dump(str(snapshot_path))
    traces = len(snapshot.traces)
    del snapshot
    snapshot_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "snapshot_path": str(snapshot_path),
        "traces": traces,
        "current_bytes": current,
        "peak_bytes": peak,
        "snapshot_s": round(snapshot_s, 4),
    }
    if census_path is not None:
        census = take_census()
        census.update(traced_current_bytes=current, traced_peak_bytes=peak)
        aside = census_path.with_name(census_path.name + ".tmp")
        aside.write_text(json.dumps(census, indent=1) + "\n")
        aside.replace(census_path)
        result.update(census_path=str(census_path), census_s=census["took_s"])
    result["took_s"] = round(time.perf_counter() - started, 4)
    return result


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "stream-harness-probe"
    token = ""
    lock = threading.Lock()
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        """Quiet: the program's own output stays readable."""

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return True
        self._answer(403, {"error": "missing or wrong token (Authorization: Bearer $" + TOKEN_ENV + ")"})
        return False

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path == "/traced":
            current, peak = tracemalloc.get_traced_memory()
            self._answer(
                200,
                {
                    "current_bytes": current,
                    "peak_bytes": peak,
                    "nframe": tracemalloc.get_traceback_limit(),
                    "tracing": tracemalloc.is_tracing(),
                    "pid": os.getpid(),
                    "t": time.time(),
                },
            )
            return
        self._answer(404, {"error": f"no route GET {self.path}; expected /traced"})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}") if 0 <= length <= 65536 else None
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self._answer(400, {"error": "expected a JSON object body of at most 64 KiB"})
            return
        if self.path == "/reset-peak":
            tracemalloc.reset_peak()
            self._answer(200, {"current_bytes": tracemalloc.get_traced_memory()[0]})
        elif self.path == "/snapshot":
            snapshot_path = request.get("snapshot_path")
            census_path = request.get("census_path")
            if not isinstance(snapshot_path, str) or not Path(snapshot_path).is_absolute():
                self._answer(400, {"error": f"snapshot_path must be an absolute path, got {snapshot_path!r}"})
                return
            if census_path is not None and (not isinstance(census_path, str) or not Path(census_path).is_absolute()):
                self._answer(400, {"error": f"census_path must be an absolute path or null, got {census_path!r}"})
                return
            try:
                with self.lock:
                    result = _snapshot(Path(snapshot_path), Path(census_path) if census_path else None)
            except OSError as error:
                self._answer(500, {"error": f"cannot write {error.filename!r}: {error.strerror}"})
                return
            self._answer(200, result)
        else:
            self._answer(404, {"error": f"no route POST {self.path}; expected /snapshot or /reset-peak"})


def _start_endpoint(token: str) -> int:
    handler = type("Handler", (_Handler,), {"token": token})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="harness-probe", daemon=True)
    thread.start()
    return int(server.server_address[1])


def _announce(port: int, shown_token: str) -> None:
    port_file = os.environ.get(PORT_FILE_ENV)
    if port_file:
        aside = Path(port_file + ".tmp")
        aside.write_text(f"{port}\n")
        aside.replace(port_file)
    # Not "listening on": the launcher reads that phrase as the target's own URL.
    token = f" token={shown_token}" if shown_token else ""
    sys.stderr.write(f"probe control endpoint at http://127.0.0.1:{port} pid={os.getpid()}{token}\n")
    sys.stderr.flush()


def _run(program: Program) -> None:
    if program.kind == "module":
        sys.argv = [program.target, *program.args]  # runpy sets argv[0] to the module's file
        runpy.run_module(program.target, run_name="__main__", alter_sys=True)
    else:
        script = Path(program.target).resolve()  # __main__.__file__ is absolute, as under `python script.py`
        sys.argv = [program.target, *program.args]
        sys.path[0] = str(script.parent)
        runpy.run_path(str(script), run_name="__main__")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness probe",
        description="Run a Python program under tracemalloc with a token-guarded control endpoint on 127.0.0.1.",
    )
    add_probe_arguments(parser)
    return parser


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``harness probe`` (shared with harness.cli)."""
    parser.add_argument(
        "--nframe",
        type=_nframe,
        default=1,
        metavar="N",
        help="frames kept per allocation traceback; more costs more throughput (default: 1)",
    )
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="the program after '--': -m MODULE ..., path/to/script.py ..., or python followed by either",
    )


def _nframe(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"--nframe must be a whole number from 1 to 1000, but got {text!r}")
    return value


def run(nframe: int, command: Sequence[str]) -> None:
    """Start the endpoint and tracemalloc, then run ``command`` here; returns when the program does."""
    words = list(command)
    command = words[1:] if words[:1] == ["--"] else words
    program = parse_program(command)
    token = os.environ.get(TOKEN_ENV, "")
    shown_token = ""
    if not token:  # started by hand: make one up and tell the person who started it
        token = shown_token = secrets.token_urlsafe(16)
    port = _start_endpoint(token)  # before tracing: the endpoint's own imports and thread stay out of the traces
    tracemalloc.start(nframe)
    if program.kind == "module":
        _check_module(program.target, command)
    _announce(port, shown_token)
    _run(program)


def run_probe(args: argparse.Namespace) -> int:
    """``harness probe``: run the program; UsageError if it is not a Python program."""
    run(args.nframe, args.command)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run(args.nframe, args.command)
    except UsageError as error:
        sys.stderr.write(f"harness probe: error: {error}\n")
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
