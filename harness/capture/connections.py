"""The upstream connection counter: a target's TCP connections to the upstream's port, by state.

Three ways to list the machine's TCP sockets to a port, cheapest first; the counter uses the first that works
and says which (and why) in meta.json:

    netlink   sock_diag (INET_DIAG) over an AF_NETLINK socket, with a port filter the kernel runs, so its cost
              hardly depends on how many other sockets are open
    ss        ``ss -Htane`` with the same port filter, in a subprocess (a fork and exec per tick)
    psutil    ``psutil.net_connections("tcp")``: parses every TCP socket of the machine in Python (about 55 ms
              with 4,000 sockets open, measured here), so it is the fallback of last resort

benchmarks/sampler_cost.py prints what each costs side by side.

Sockets are attributed to a process by inode, through the ``socket:[INODE]`` links of ``/proc/PID/fd`` of the
process and its children. A count of zero is only written when those links could be read: when they cannot
(permission, another network namespace), the count is left blank and one warning says why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psutil

from harness.capture.process_sampler import process_tree_pids
from harness.runfolder import TABLES

__all__ = [
    "CONNECTION_COLUMNS",
    "METHODS",
    "ConnectionCount",
    "ConnectionCounter",
    "SocketLister",
    "TcpSocket",
    "list_netlink",
    "list_psutil",
    "list_ss",
    "open_lister",
    "socket_inodes",
]

METHODS = ("netlink", "ss", "psutil")

CONNECTION_COLUMNS = TABLES["connections"]
"""connections.csv: one row per counted target per tick. Counts are blank (not 0) when they could not be read."""

STATES = CONNECTION_COLUMNS[CONNECTION_COLUMNS.index("established") : CONNECTION_COLUMNS.index("total")]
"""The states a socket still owned by a process can be in (TIME_WAIT and orphans belong to no process)."""

# Linux's TCP state numbers (include/net/tcp_states.h) and ss's and psutil's names for them.
_TCP_STATES = {
    1: "established",
    2: "syn_sent",
    3: "syn_recv",
    4: "fin_wait1",
    5: "fin_wait2",
    6: "time_wait",
    7: "close",
    8: "close_wait",
    9: "last_ack",
    10: "listen",
    11: "closing",
    12: "new_syn_recv",
}
_SS_STATES = {
    "ESTAB": "established",
    "SYN-SENT": "syn_sent",
    "SYN-RECV": "syn_recv",
    "FIN-WAIT-1": "fin_wait1",
    "FIN-WAIT-2": "fin_wait2",
    "TIME-WAIT": "time_wait",
    "UNCONN": "close",
    "CLOSE-WAIT": "close_wait",
    "LAST-ACK": "last_ack",
    "LISTEN": "listen",
    "CLOSING": "closing",
}


class TcpSocket(NamedTuple):
    """One TCP socket whose remote port is one of the ports asked for.

    A NamedTuple, not a dataclass: thousands are made per tick when many sockets match, and a tuple is cheaper.
    """

    inode: int
    """0 for sockets no process owns any more (TIME_WAIT, orphans)."""
    dport: int
    state: str
    """Lower-case: established, close_wait..."""


SocketLister = Callable[[Sequence[int]], list[TcpSocket]]
"""Lists the machine's TCP sockets whose remote port is in the given ports."""


# --- netlink sock_diag ------------------------------------------------------------------------------------------

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_INET_DIAG_REQ_BYTECODE = 1
_BC_JMP = 1
_BC_D_GE = 4
_BC_D_LE = 5
_TCPDIAG_GETSOCK = 18
_OWNED_STATES = sum(1 << state for state in (1, 2, 4, 5, 8, 9, 11))
"""ESTABLISHED, SYN_SENT, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING: the states of STATES below."""
_NLMSG_HEADER = struct.Struct("=IHHII")
_REQ_V2 = struct.Struct("=BBBxI48x")  # family, protocol, ext, pad, states, inet_diag_sockid (48 bytes, zero)
_REQ_V1 = struct.Struct("=4x48xI4x")  # inet_diag_req: family..ext (0: any), sockid, states, dbs
_DIAG_FIELDS = struct.Struct("=IH2xI4x xB4xH60xI")
"""nlmsghdr (length, type, seq) + inet_diag_msg (state at byte 1, remote port in network order at 6, inode at 68)."""


def _port_filter(ports: Sequence[int]) -> bytes:
    """INET_DIAG bytecode: accept a socket whose remote port is any of ``ports``.

    Each port is a pair of ops, ``dport >= P`` then ``dport <= P`` (every kernel with sock_diag has these), each
    followed by the port in a second op's ``no`` field. A failed test jumps to the next port's block (from the
    last block: past the end, which rejects); a match jumps to the end of the program, which accepts.
    """
    block = 20  # D_GE (4) + port (4) + D_LE (4) + port (4) + JMP to accept (4)
    total = block * len(ports)
    program = b""
    for index, port in enumerate(ports):
        remaining = total - index * block
        last = index == len(ports) - 1
        # A jump to exactly the end accepts, one op past it rejects (the kernel checks that len ends at 0).
        ge_no = remaining + 4 if last else block
        le_no = remaining - 8 + 4 if last else block - 8
        program += struct.pack("=BBH", _BC_D_GE, 8, ge_no) + struct.pack("=BBH", 0, 0, port)
        program += struct.pack("=BBH", _BC_D_LE, 8, le_no) + struct.pack("=BBH", 0, 0, port)
        # JMP always takes its "no" jump, here to the end of the program (accept); its "yes" (4) is only what the
        # kernel's validator walks by.
        program += struct.pack("=BBH", _BC_JMP, 4, remaining - 16)
    return program


def _netlink_request(family: int, ports: Sequence[int], seq: int) -> bytes:
    """A dump request for TCP sockets of ``family`` whose remote port is in ``ports``.

    ``family`` 0 (AF_UNSPEC) sends the older TCPDIAG_GETSOCK request, whose one walk of the kernel's socket hash
    covers IPv4 and IPv6 together: half the cost of one SOCK_DIAG_BY_FAMILY request per family (the walk over
    the hash's buckets, not the sockets found, is most of the cost).
    """
    if family == socket.AF_UNSPEC:
        kind = _TCPDIAG_GETSOCK
        payload = _REQ_V1.pack(_OWNED_STATES)
    else:
        kind = _SOCK_DIAG_BY_FAMILY
        payload = _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, _OWNED_STATES)
    bytecode = _port_filter(ports)
    attribute = struct.pack("=HH", 4 + len(bytecode), _INET_DIAG_REQ_BYTECODE) + bytecode
    length = _NLMSG_HEADER.size + len(payload) + len(attribute)
    header = _NLMSG_HEADER.pack(length, kind, _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0)
    return header + payload + attribute


class NetlinkLister:
    """sock_diag dumps of TCP sockets, filtered by remote port in the kernel; one netlink socket reused."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
        self._sock.settimeout(2.0)
        self._seq = 0
        self.families: tuple[int, ...] = (socket.AF_UNSPEC,)
        try:
            self([1])
        except OSError:
            self.families = (socket.AF_INET, socket.AF_INET6)  # a kernel without the older request
            self([1])

    def close(self) -> None:
        self._sock.close()

    def __call__(self, ports: Sequence[int]) -> list[TcpSocket]:
        found: list[TcpSocket] = []
        if not ports:
            return found
        for family in self.families:
            self._seq += 1
            self._sock.send(_netlink_request(family, ports, self._seq))
            self._read_dump(self._seq, set(ports), found)
        return found

    def _read_dump(self, seq: int, ports: set[int], found: list[TcpSocket]) -> None:
        # The hot loop when thousands of sockets match: one unpack per message, the port compared in network
        # byte order (as the kernel sends it), states looked up in a local.
        states = _TCP_STATES
        wanted = {socket.htons(port): port for port in ports}
        whole = _DIAG_FIELDS.size
        while True:
            data = self._sock.recv(1 << 16)
            end = len(data)
            offset = 0
            while offset + _NLMSG_HEADER.size <= end:
                if offset + whole <= end:
                    length, kind, got_seq, state, dport_raw, inode = _DIAG_FIELDS.unpack_from(data, offset)
                else:  # a short message (DONE, ERROR) at the end of the buffer
                    length, kind, _flags, got_seq, _pid = _NLMSG_HEADER.unpack_from(data, offset)
                    state = dport_raw = inode = 0
                if length < _NLMSG_HEADER.size:
                    raise OSError(f"netlink: malformed message of length {length}")
                if got_seq == seq:
                    if kind == _SOCK_DIAG_BY_FAMILY or kind == _TCPDIAG_GETSOCK:
                        # The kernel filtered already; checking again costs nothing and guards the bytecode.
                        port = wanted.get(dport_raw)
                        if port is not None:
                            found.append(TcpSocket(inode, port, states.get(state, "other")))
                    elif kind == _NLMSG_DONE:
                        return
                    elif kind == _NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", data, offset + _NLMSG_HEADER.size)
                        raise OSError(-code, f"netlink sock_diag: {os.strerror(-code)}")
                offset += (length + 3) & ~3


def list_netlink(ports: Sequence[int]) -> list[TcpSocket]:
    """One-off netlink listing (opens and closes its own netlink socket)."""
    lister = NetlinkLister()
    try:
        return lister(ports)
    finally:
        lister.close()


# --- ss -------------------------------------------------------------------------------------------------------


def list_ss(ports: Sequence[int], *, timeout_s: float = 2.0) -> list[TcpSocket]:
    """``ss -Htane`` filtered by remote port; the inode comes from its ``ino:`` field."""
    if not ports:
        return []
    expression = " or ".join(f"dport = :{port}" for port in ports)
    completed = subprocess.run(
        ["ss", "-Htane", expression], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if completed.returncode != 0:
        raise OSError(f"ss exited with code {completed.returncode}: {completed.stderr.strip()[:200]}")
    found = []
    wanted = set(ports)
    for line in completed.stdout.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        port_text = fields[4].rpartition(":")[2]
        inode = next((int(field[4:]) for field in fields[5:] if field.startswith("ino:")), 0)
        if port_text.isdigit() and int(port_text) in wanted:
            found.append(TcpSocket(inode, int(port_text), _SS_STATES.get(fields[0], "other")))
    return found


# --- psutil ---------------------------------------------------------------------------------------------------


def list_psutil(ports: Sequence[int]) -> list[TcpSocket]:
    """psutil's machine-wide listing (parses every TCP socket in Python); no inodes, so pids are attached instead."""
    wanted = set(ports)
    # psutil gives the pid, not the inode: the pid is carried in ``inode``, negated (see ConnectionCounter).
    return [
        TcpSocket(-(conn.pid or 0), conn.raddr.port, conn.status.lower())
        for conn in psutil.net_connections("tcp")
        if conn.raddr and conn.raddr.port in wanted
    ]


def open_lister(prefer: str | None = None) -> tuple[str, SocketLister, str]:
    """The first method that works, ``prefer`` first: (name, lister, why this one)."""
    order = [prefer] if prefer else []
    order += [method for method in METHODS if method not in order]
    failures = []
    for method in order:
        if method not in METHODS:
            raise ValueError(f"connection counting method must be one of {', '.join(METHODS)}, but got {method!r}")
        try:
            lister: SocketLister
            if method == "netlink":
                lister = NetlinkLister()  # makes a real request, so a kernel or sandbox without sock_diag fails here
            elif method == "ss":
                if shutil.which("ss") is None:
                    raise OSError("no ss command on PATH")
                list_ss([1])
                lister = list_ss
            else:
                list_psutil([1])
                lister = list_psutil
        except (OSError, subprocess.SubprocessError, psutil.Error) as error:
            failures.append(f"{method}: {error}")
            continue
        why = "first that worked" + (f" (failed: {'; '.join(failures)})" if failures else "")
        return method, lister, why
    raise OSError(f"no way to list TCP sockets works here: {'; '.join(failures)}")


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
