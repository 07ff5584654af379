"""The machine's TCP sockets to given remote ports, listed three ways, cheapest first.

    netlink   sock_diag (INET_DIAG) over an AF_NETLINK socket, with a port filter the kernel runs, so its cost
              hardly depends on how many other sockets are open
    ss        ``ss -Htane`` with the same port filter, in a subprocess (a fork and exec per tick)
    psutil    ``psutil.net_connections("tcp")``: parses every TCP socket of the machine in Python (about 55 ms
              with 4,000 sockets open, measured here), so it is the fallback of last resort

``open_lister`` picks the first that works and says why; benchmarks/sampler_cost.py prints what each costs side
by side. Which process owns a socket is the connection counter's business (capture/connections.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Sequence
from typing import NamedTuple

import psutil

__all__ = [
    "METHODS",
    "NetlinkLister",
    "SocketLister",
    "TcpSocket",
    "list_netlink",
    "list_psutil",
    "list_ss",
    "open_lister",
]

METHODS = ("netlink", "ss", "psutil")

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
"""ESTABLISHED, SYN_SENT, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING: the states a process can still own."""
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
