"""The probe's object census: live objects by type, what containers hold, and who holds the biggest containers.

``gc.get_objects()`` sees only containers; bytes and str are not among them, and they are what a streaming
server buffers. So each container is also charged with the leaves (untracked objects) it refers to, each leaf's
size shared among its referrers by reference count. For the containers holding the most (and growing the most
since the previous census), the biggest instances are traced one or two hops back with ``gc.get_referrers`` to a
name such as ``targets.relay.ByteBuffer._chunks``, within a time budget.

It runs inside the profiled program (under tracemalloc), so it is written to allocate as little as possible.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["take_census"]

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
