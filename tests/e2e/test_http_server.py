"""The REST API's HTTP server on the real controller: request smuggling, body limits,
content types, read timeouts and many idle connections (the limits the README states)."""
import json
import socket
import time

import pytest

from testbed.proc import wait_for
from testbed.topology import TwoSites

REQUEST_TIMEOUT = 10  # README: a request must arrive whole within 10 s
MAX_CONNECTIONS = 100  # README: at most 100 open connections; the oldest idle one makes room
CAPTURES = "/v1/switches/site-a/captures"


@pytest.fixture(scope="module")
def bed():
    """No token: the case where only the content type stands between a web page and a write."""
    with TwoSites() as two_sites:
        yield two_sites


def connect(bed):
    return socket.create_connection(("127.0.0.1", bed.api_port), timeout=REQUEST_TIMEOUT + 5)


def exchange(bed, raw):
    """Send ``raw`` on a new connection; everything the server sends until it closes."""
    with connect(bed) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def request(method, path, body, content_type="application/json", extra=b""):
    head = "%s %s HTTP/1.1\r\nHost: sggw\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        method, path, content_type, len(body))
    return head.encode() + extra + b"Connection: close\r\n\r\n" + body


def capture_names(bed):
    return [c["name"] for c in bed.controller.get(CAPTURES) if c["source"] == "api"]


def closed_within(sock, seconds):
    """How long until the server closed ``sock``, or None if it stayed open ``seconds``."""
    start = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - start < seconds:
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


# --- request smuggling --------------------------------------------------------------------

def test_conflicting_content_length_and_chunked_is_400_and_nothing_is_processed(bed):
    """A front end that trusts Content-Length sees one request; a server that trusts the
    chunked encoding would see two: the first capture rule and a smuggled one."""
    first = json.dumps({"name": "first", "ipv4_dst": "10.9.1.0/24"}).encode()
    smuggled = request("POST", CAPTURES, json.dumps(
        {"name": "smuggled", "ipv4_dst": "10.9.2.0/24"}).encode())
    body = b"%x\r\n%s\r\n0\r\n\r\n%s" % (len(first), first, smuggled)
    head = ("POST %s HTTP/1.1\r\nHost: sggw\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % (CAPTURES, len(body)))
    answer = exchange(bed, head.encode() + body)
    assert answer.startswith(b"HTTP/1.1 400 ") or answer.startswith(b"HTTP/1.0 400 "), answer
    assert answer.count(b"HTTP/1.") == 1, answer
    assert capture_names(bed) == []


@pytest.mark.parametrize("framing", [
    "Transfer-Encoding: gzip", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
    "Content-Length: 0\r\nContent-Length: %(length)d",
], ids=["gzip", "two-encodings", "two-lengths"])
def test_an_ambiguous_body_length_is_400_and_nothing_is_processed(bed, framing):
    smuggled = request("POST", CAPTURES, json.dumps(
        {"name": "smuggled", "ipv4_dst": "10.9.2.0/24"}).encode())
    head = "POST %s HTTP/1.1\r\nHost: sggw\r\nContent-Type: application/json\r\n%s\r\n\r\n" % (
        CAPTURES, framing % {"length": len(smuggled)})
    answer = exchange(bed, head.encode() + smuggled)
    assert answer.startswith(b"HTTP/1.1 400 ") and answer.count(b"HTTP/1.") == 1, answer
    assert capture_names(bed) == []


# --- bodies and content types ---------------------------------------------------------------

@pytest.mark.parametrize("body", [b"[" * 10000 + b"]" * 10000,
                                  b'{"name": ' + b'{"a":' * 10000 + b"1" + b"}" * 10001])
def test_a_body_nested_too_deeply_is_400(bed, body):
    status, answer = bed.controller.call("POST", CAPTURES, raw=body)
    assert status == 400 and "nested deeper than" in answer["error"], answer
    assert answer["field"] is None
    assert capture_names(bed) == []
    assert "Traceback" not in bed.controller.log()


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None])
def test_a_write_without_a_json_content_type_is_415_and_changes_nothing(bed, content_type):
    """What a web page can send cross-site without a preflight is refused (no token set)."""
    body = json.dumps({"name": "cross-site", "ipv4_dst": "10.9.3.0/24"}).encode()
    raw = request("POST", CAPTURES, body, content_type=content_type or "")
    if content_type is None:
        raw = raw.replace(b"Content-Type: \r\n", b"")
    answer = exchange(bed, raw)
    assert answer.startswith(b"HTTP/1.1 415 "), answer
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert "application/json" in error["error"] and error["field"] is None
    assert capture_names(bed) == []
    status, _ = bed.controller.call("PUT", CAPTURES + "/cross-site", raw=body,
                                    headers={"Content-Type": "text/plain"})
    assert status == 415 and capture_names(bed) == []


def test_a_json_content_type_with_a_charset_is_accepted(bed):
    body = json.dumps({"name": "with-charset", "ipv4_dst": "10.9.4.0/24"}).encode()
    status, answer = bed.controller.call(
        "POST", CAPTURES, raw=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert status == 201, answer
    assert bed.controller.call("DELETE", CAPTURES + "/with-charset")[0] == 204


def test_a_chunked_body_is_read_whole(bed):
    body = json.dumps({"name": "chunked", "ipv4_dst": "10.9.7.0/24"}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]))
    answer = exchange(bed, ("POST %s HTTP/1.1\r\nHost: sggw\r\nContent-Type: application/json"
                            "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                            % CAPTURES).encode() + chunks + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 201 "), answer
    assert capture_names(bed) == ["chunked"]
    assert bed.controller.call("DELETE", CAPTURES + "/chunked")[0] == 204


# --- read timeouts and idle connections -----------------------------------------------------

def test_silent_half_sent_and_trickling_requests_are_closed_within_the_read_timeout(bed):
    silent, half, trickle = connect(bed), connect(bed), connect(bed)
    try:
        body = json.dumps({"name": "half-sent", "ipv4_dst": "10.9.5.0/24"}).encode()
        half.sendall(request("POST", CAPTURES, body)[:-5])  # the body's last bytes never come
        trickle.sendall(b"GET /v1/health HTTP/1.1\r\n")
        start, times = time.monotonic(), {}
        while time.monotonic() - start < REQUEST_TIMEOUT + 5 and len(times) < 3:
            try:
                trickle.sendall(b"X-Slow: 1\r\n")  # a header a second, never the end
            except OSError:
                pass
            for name, sock in (("silent", silent), ("half", half), ("trickle", trickle)):
                if name not in times and closed_within(sock, 0.3) is not None:
                    times[name] = time.monotonic() - start
            time.sleep(0.4)
        assert sorted(times) == ["half", "silent", "trickle"], times
        assert all(t < REQUEST_TIMEOUT + 2 for t in times.values()), times
    finally:
        for sock in (silent, half, trickle):
            sock.close()
    assert capture_names(bed) == []
    assert bed.controller.call("GET", "/v1/health")[0] == 200


def server_connections(port):
    """Established TCP connections on the REST port, server side (this namespace)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    count += 1
    return count


def test_health_and_reads_answer_while_many_idle_connections_are_open(bed):
    idle = []
    try:
        for _ in range(1100):
            idle.append(connect(bed))
        # the kernel completes connections the server has not taken yet (its backlog): wait
        # until it has taken all of them, evicting the oldest beyond its bound
        wait_for(lambda: server_connections(bed.api_port) <= MAX_CONNECTIONS, 30,
                 what="the server holding at most %d connections" % MAX_CONNECTIONS)
        for path in ("/v1/health", "/v1/switches", CAPTURES):
            start = time.monotonic()
            status, _ = bed.controller.call("GET", path, timeout=5)
            assert status == 200 and time.monotonic() - start < 2, path
        status, answer = bed.controller.call(
            "POST", CAPTURES, {"name": "busy", "ipv4_dst": "10.9.6.0/24"}, timeout=10)
        assert status == 201, answer
        assert server_connections(bed.api_port) <= MAX_CONNECTIONS
    finally:
        for sock in idle:
            sock.close()
    assert bed.controller.call("DELETE", CAPTURES + "/busy")[0] == 204
