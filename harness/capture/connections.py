"""The upstream connection counter: a target's TCP connections to the upstream's port, by state.

The machine's sockets to the port come from the first lister that works (capture/tcp_sockets.py: netlink, ss,
psutil); the counter says which (and why) in meta.json.

Sockets are attributed to a process by inode, through the ``socket:[INODE]`` links of ``/proc/PID/fd`` of the
process and its children. A count of zero is only written when those links could be read: when they cannot
(permission, another network namespace), the count is left blank and one warning says why.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.capture.process_sampler import process_tree_pids
from harness.capture.tcp_sockets import TcpSocket, open_lister
from harness.runfolder import TABLES

__all__ = ["CONNECTION_COLUMNS", "STATES", "ConnectionCount", "ConnectionCounter", "socket_inodes"]

CONNECTION_COLUMNS = TABLES["connections"]
"""connections.csv: one row per counted target per tick. Counts are blank (not 0) when they could not be read."""

STATES = CONNECTION_COLUMNS[CONNECTION_COLUMNS.index("established") : CONNECTION_COLUMNS.index("total")]
"""The states a socket still owned by a process can be in (TIME_WAIT and orphans belong to no process)."""

# --- attribution to processes ---------------------------------------------------------------------------------


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets ``pid`` holds open. PermissionError when /proc/PID/fd cannot be read."""
    inodes = set()
    # os rather than pathlib on this path: it runs for every descriptor of every target at every tick.
    for entry in os.scandir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(entry.path)  # noqa: PTH115
        except FileNotFoundError:  # closed between listdir and readlink
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


@dataclass(frozen=True, slots=True)
class ConnectionCount:
    """One target's connections to its upstream port at one tick."""

    target: str
    pid: int
    port: int
    by_state: Mapping[str, int] | None
    """None when the count could not be read (the warning says why)."""

    def row(self, t: float, method: str) -> dict[str, object]:
        row: dict[str, object] = {"t": t, "target": self.target, "pid": self.pid, "port": self.port, "method": method}
        if self.by_state is not None:
            counts = {state: self.by_state.get(state, 0) for state in STATES}
            row.update(counts, total=sum(counts.values()))
        return row


class ConnectionCounter:
    """Counts, per target process (with its children), its TCP connections to one port by state."""

    def __init__(self, watched: Iterable[tuple[str, int, int]], prefer: str | None = None) -> None:
        """``watched``: (target name, pid, upstream port) triples."""
        self.watched = list(watched)
        self.method, self._lister, self.method_reason = open_lister(prefer)
        self.warnings: list[str] = []
        """New one-line warnings, taken (and cleared) by the caller after each ``count``."""
        self._warned: set[tuple[str, str]] = set()
        self._gone: set[str] = set()
        self._unreadable: set[str] = set()
        self._owner: dict[int, tuple[str, ...]] = {}
        """Socket inode -> the watched targets that hold it (empty: some other process)."""
        for name, pid, _port in self.watched:
            self._check_namespace(name, pid)
            self._check_readable(name, pid)

    def close(self) -> None:
        close = getattr(self._lister, "close", None)
        if close is not None:
            close()

    def _warn(self, target: str, key: str, message: str) -> None:
        if (target, key) not in self._warned:
            self._warned.add((target, key))
            self.warnings.append(message)

    def _check_readable(self, name: str, pid: int) -> None:
        """A count of 0 must mean no connections, not "could not look": check the fd links can be read at all."""
        try:
            socket_inodes(pid)
        except PermissionError as error:
            self._unreadable.add(name)
            self._warn(
                name,
                "permission",
                f"connections of target {name!r} (pid {pid}) not counted: cannot read /proc/{pid}/fd "
                f"({error.strerror}); run the harness as the target's user or as root",
            )
        except FileNotFoundError:
            self._gone.add(name)

    def _check_namespace(self, name: str, pid: int) -> None:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/ns/net").readlink() != Path("/proc/self/ns/net").readlink():
                self._warn(
                    name,
                    "netns",
                    f"connections of target {name!r} (pid {pid}) may read 0: it lives in another network namespace, "
                    "whose sockets this process cannot list",
                )

    def take_warnings(self) -> list[str]:
        warnings, self.warnings = self.warnings, []
        return warnings

    def count(self) -> list[ConnectionCount]:
        """One count per watched target still alive (a vanished one is reported by the process sampler)."""
        live = []
        for name, pid, port in self.watched:
            if name not in self._gone and not os.path.exists(f"/proc/{pid}"):  # noqa: PTH110 (hot path)
                self._gone.add(name)
            if name not in self._gone:
                live.append((name, pid, port))
        if not live:
            return []
        sockets = self._lister(sorted({port for _, _, port in live}))
        if self.method == "psutil":
            owner_of = self._owners_by_pid(live, sockets)
        else:
            owner_of = self._owners_by_inode(live, sockets)
        port_of = {name: port for name, _, port in live}
        by_target: dict[str, Counter[str]] = {name: Counter() for name in port_of}
        for each in sockets:  # one pass: with thousands of sockets to the port, this loop is the cost
            for owner in owner_of(each):
                if port_of.get(owner) == each.dport:
                    by_target[owner][each.state] += 1
        return [
            ConnectionCount(name, pid, port, None if name in self._unreadable else by_target[name])
            for name, pid, port in live
        ]

    def _owners_by_inode(
        self, live: Sequence[tuple[str, int, int]], sockets: Sequence[TcpSocket]
    ) -> Callable[[TcpSocket], tuple[str, ...]]:
        """Owners by inode (more than one when two watched targets share a process).

        The /proc/PID/fd links are read again only when a socket shows up whose inode is not known yet: with
        thousands of connections open, re-reading every link each tick would cost more than the listing itself.
        An inode names one socket for its whole life, so the cache stays right.
        """
        seen = {s.inode for s in sockets if s.inode}
        if seen - self._owner.keys():
            for name, pid, _port in live:
                try:
                    pids = process_tree_pids(pid)
                except ProcessLookupError:
                    self._gone.add(name)
                    continue
                for each in pids:
                    try:
                        inodes = socket_inodes(each)
                    except FileNotFoundError:  # a child that just exited
                        continue
                    except PermissionError as error:
                        self._unreadable.add(name)
                        self._warn(
                            name,
                            "permission",
                            f"connections of target {name!r} (pid {pid}) not counted: cannot read /proc/{each}/fd "
                            f"({error.strerror}); run the harness as the target's user or as root",
                        )
                        break
                    for inode in inodes & seen:
                        if name not in self._owner.get(inode, ()):
                            self._owner[inode] = (*self._owner.get(inode, ()), name)
            for inode in seen - self._owner.keys():
                self._owner[inode] = ()  # another process's socket (a client, another relay)
        # Forget sockets that are gone, so the cache stays the size of what is open.
        self._owner = {inode: owner for inode, owner in self._owner.items() if inode in seen}
        owner = self._owner
        return lambda s: owner.get(s.inode, ())

    def _owners_by_pid(
        self, live: Sequence[tuple[str, int, int]], sockets: Sequence[TcpSocket]
    ) -> Callable[[TcpSocket], tuple[str, ...]]:
        owner: dict[int, tuple[str, ...]] = {}
        for name, pid, _port in live:
            with contextlib.suppress(ProcessLookupError):
                for each in process_tree_pids(pid):
                    owner[each] = (*owner.get(each, ()), name)
        # Orphaned sockets (closed, in FIN_WAIT) have no owner either; an established one without a pid, when
        # not root, is one psutil was not allowed to attribute.
        if os.geteuid() != 0 and any(s.inode == 0 and s.state == "established" for s in sockets):
            for name, pid, _port in live:
                self._warn(
                    name,
                    "psutil-pid",
                    f"connections of target {name!r} (pid {pid}) may be undercounted: psutil could not name "
                    "the owner of some sockets (permission)",
                )
        return lambda s: owner.get(-s.inode, ())
