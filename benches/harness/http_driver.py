#!/usr/bin/env python3
"""The harness's HTTP driver from another runtime: tool calls over streamable HTTP on kept-alive
HTTP/1.1 connections, as the MCP SDKs make them (one pooled connection per request in flight).

    python3 benches/harness/http_driver.py URL CALLS IN_FLIGHT TOOL ARGUMENTS_JSON

It sends `initialize` (and `notifications/initialized`), then CALLS `tools/call` requests with IN_FLIGHT
in flight, each thread on its own `http.client` connection that stays open for all its calls; a stateful
server's `Mcp-Session-Id` is sent on every call. It prints one JSON object: p50 and p99 per call in
microseconds, calls per second, the session id's presence, the response content types seen, and the
driver's own CPU time per call (so a reader can tell when the client, not the server, is the limit).
Any answer that is not HTTP 200 with a JSON-RPC result ends the run with a non-zero exit.
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

PROTOCOL = "2025-11-25"
# Calls each connection makes before the measured ones: connection set-up, first-use costs.
WARM_UP = 20


def exchange(conn, path, headers, message):
    """POSTs one JSON-RPC message and reads the whole answer (JSON or an SSE stream that ends)."""
    conn.request("POST", path, json.dumps(message), headers)
    response = conn.getresponse()
    return response, response.read()


class Failed(Exception):
    """An answer that is not HTTP 200 with a JSON-RPC result."""


def check(response, body, what):
    if response.status != 200 or b'"result"' not in body or b'"isError":true' in body:
        raise Failed(f"{what}: HTTP {response.status}: {body[:300]!r}")


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    calls = int(sys.argv[2])
    in_flight = int(sys.argv[3])
    tool = sys.argv[4]
    arguments = json.loads(sys.argv[5])
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }

    first = http.client.HTTPConnection(url.hostname, url.port)
    response, body = exchange(first, url.path, headers, {
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                   "clientInfo": {"name": "devgate-harness", "version": "1"}},
    })
    try:
        check(response, body, "initialize")
    except Failed as e:
        sys.exit(str(e))
    session = response.getheader("Mcp-Session-Id")
    if session:
        headers["Mcp-Session-Id"] = session
    headers["MCP-Protocol-Version"] = PROTOCOL
    first.request("POST", url.path, json.dumps(
        {"jsonrpc": "2.0", "method": "notifications/initialized"}), headers)
    answer = first.getresponse()
    answer.read()
    if answer.status not in (200, 202):
        sys.exit(f"notifications/initialized: HTTP {answer.status}")

    lock = threading.Lock()
    next_id = [0]
    warm = [0]
    times = []
    types = set()
    start = threading.Barrier(in_flight + 1, timeout=120)
    errors = []

    def take():
        with lock:
            if next_id[0] >= calls:
                return None
            next_id[0] += 1
            return next_id[0]

    def worker(conn):
        try:
            work(conn)
        except Exception as e:  # the first failure ends the run, named
            with lock:
                errors.append(e)
            start.abort()

    def work(conn):
        def call(i):
            response, body = exchange(conn, url.path, headers, {
                "jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            })
            check(response, body, f"call {i}")
            return response.getheader("Content-Type", "")

        # JSON-RPC ids stay unique within the session: warm-up calls count down from -1.
        for w in range(WARM_UP):
            with lock:
                warm[0] -= 1
                i = warm[0]
            call(i)
        start.wait()
        mine = []
        kinds = set()
        while (i := take()) is not None:
            began = time.perf_counter()
            kinds.add(call(i))
            mine.append(time.perf_counter() - began)
        with lock:
            times.extend(mine)
            types.update(kinds)

    connections = [first] + [
        http.client.HTTPConnection(url.hostname, url.port) for _ in range(in_flight - 1)
    ]
    threads = [threading.Thread(target=worker, args=(c,)) for c in connections]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    began, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    if session:
        # End the session as the SDKs do on close, so repeated runs stay under the per-user cap.
        first.request("DELETE", url.path, headers=headers)
        first.getresponse().read()
    if errors:
        sys.exit(f"{len(errors)} connection(s) failed; the first: {errors[0]}")
    if len(times) != calls:
        sys.exit(f"{len(times)} of {calls} calls answered")
    times.sort()

    def percentile(p):
        return times[min(len(times) - 1, round((len(times) - 1) * p))] * 1e6

    print(json.dumps({
        "calls": calls,
        # Every POST this run made (initialize, initialized, warm-up calls, calls): devgate's CPU over
        # the run divides by this.
        "requests": 2 + WARM_UP * in_flight + calls,
        "in_flight": in_flight,
        "p50_us": percentile(0.5),
        "p99_us": percentile(0.99),
        "calls_per_s": calls / elapsed,
        "driver_cpu_per_call_us": cpu / calls * 1e6,
        "session": session is not None,
        "content_types": sorted(types),
    }))


if __name__ == "__main__":
    main()
