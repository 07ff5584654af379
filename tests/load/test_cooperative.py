"""Reading under gevent through ReadableWait: data wakes the reader, deadlines hold however often data comes, a
reset is a broken stream. Run in a monkey-patched subprocess, as Locust runs the user (pytest stays unpatched)."""

from __future__ import annotations

import json

from tests.support import run_python

SCRIPT = r"""
from gevent import monkey
monkey.patch_all()
import json, socket, struct, time
import gevent
from gevent.server import StreamServer
from harness.load.stream_client import StreamBroken, StreamConnection

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

def serve(sock, address):
    sock.recv(65536)
    sock.sendall(HEAD)
    for _ in range(12):  # a chunk every 0.1 s for 1.2 s, then silence, then a reset
        gevent.sleep(0.1)
        sock.sendall(b"1\r\nx\r\n")
    gevent.sleep(1.0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()

server = StreamServer(("127.0.0.1", 0), serve)
server.start()
conn = StreamConnection("127.0.0.1", server.server_port)
result = {"cooperative": conn._readable is not None}
conn.send_request("GET", "/", {})
conn.read_head(timeout_s=2)
start = time.monotonic()
while conn.chunks_received < 12:
    conn.read(65536, timeout_s=0.3)  # a deadline shorter than the stream, longer than each gap
result["read_for_s"] = time.monotonic() - start
start = time.monotonic()
try:
    conn.read(65536, timeout_s=0.3)
except TimeoutError:
    result["timed_out_after_s"] = time.monotonic() - start
others = gevent.spawn(lambda: [gevent.sleep(0.01) for _ in range(50)])  # the hub serves other greenlets meanwhile
try:
    while conn.read(65536, timeout_s=5) is not None:
        pass
except StreamBroken as error:
    result["broken"] = str(error)
others.join(1)
result["others_done"] = others.ready()
conn.close()
print(json.dumps(result))
"""


def test_deadlines_data_and_resets_under_gevent() -> None:
    result = json.loads(run_python(SCRIPT, timeout_s=30)[-1])
    assert result["cooperative"]
    assert result["read_for_s"] > 1.0  # twelve gaps of 0.1 s under a 0.3 s deadline: no timeout
    assert 0.29 <= result["timed_out_after_s"] < 1.0
    assert "connection broken" in result["broken"]
    assert result["others_done"]
