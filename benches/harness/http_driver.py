#!/usr/bin/env python3
"""The harness's driver from another runtime: tool calls over streamable HTTP on kept-alive HTTP/1.1
connections, as the MCP SDKs make them (one pooled connection per request in flight), or over stdio to a
child process, as an SDK's stdio client makes them (one pipe pair shared by every caller).

    python3 benches/harness/http_driver.py URL CALLS IN_FLIGHT TOOL ARGUMENTS_JSON
    python3 benches/harness/http_driver.py 'stdio:["devgate", "stdio", ...]' CALLS IN_FLIGHT TOOL ARGUMENTS_JSON

It sends `initialize` (and `notifications/initialized`), then CALLS `tools/call` requests with IN_FLIGHT
in flight from as many threads. Over HTTP each thread has its own `http.client` connection that stays
open for all its calls, and a stateful server's `Mcp-Session-Id` is sent on every call. Over stdio the
threads write their requests to the child's stdin under a lock and one reader thread hands each answer
to the thread waiting for its id. It prints one JSON object: p50 and p99 per call in microseconds, calls
per second, the session id's presence, the response content types seen, and the driver's own CPU time
per call (so a reader can tell when the client, not the server, is the limit); over stdio also the
child's CPU per request. Any answer that is not a JSON-RPC result (over HTTP: with status 200) ends the
run with a non-zero exit.
"""

import http.client
import json
import os
import subprocess
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
    """An answer that is not a JSON-RPC result (over HTTP, not with status 200)."""


def check(response, body, what):
    if response.status != 200 or b'"result"' not in body or b'"isError":true' in body:
        raise Failed(f"{what}: HTTP {response.status}: {body[:300]!r}")


class Stdio:
    """A child speaking MCP on its stdin and stdout, shared by the calling threads."""

    def __init__(self, argv):
        self.child = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.write_lock = threading.Lock()
        self.lock = threading.Lock()
        self.waiting = {}
        self.closed = False
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.child.stdout:
            message = json.loads(line)
            if "id" not in message or "method" in message:
                continue  # a notification or a request of the server's: not an answer
            with self.lock:
                slot = self.waiting.pop(message["id"], None)
            if slot is not None:
                slot[1] = message
                slot[0].set()
        with self.lock:
            self.closed = True
            for slot in self.waiting.values():
                slot[0].set()

    def send(self, message):
        data = (json.dumps(message) + "\n").encode()
        with self.write_lock:
            self.child.stdin.write(data)
            self.child.stdin.flush()

    def request(self, message, what):
        """Sends a request and waits for its answer, which must be a result."""
        slot = [threading.Event(), None]
        with self.lock:
            if self.closed:
                raise Failed(f"{what}: the child closed its stdout")
            self.waiting[message["id"]] = slot
        self.send(message)
        if not slot[0].wait(120) or slot[1] is None:
            raise Failed(f"{what}: no answer")
        answer = slot[1]
        if "result" not in answer or answer["result"].get("isError"):
            raise Failed(f"{what}: {json.dumps(answer)[:300]}")
        return answer

    def cpu(self):
        """The child's user + system CPU time so far, in seconds."""
        with open(f"/proc/{self.child.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        self.child.stdin.close()
        self.child.wait(30)


def initialize_message():
    return {
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                   "clientInfo": {"name": "devgate-harness", "version": "1"}},
    }


def main():
    calls = int(sys.argv[2])
    in_flight = int(sys.argv[3])
    tool = sys.argv[4]
    arguments = json.loads(sys.argv[5])
    if sys.argv[1].startswith("stdio:"):
        run_stdio(json.loads(sys.argv[1][len("stdio:"):]), calls, in_flight, tool, arguments)
        return
    url = urllib.parse.urlsplit(sys.argv[1])
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }

    first = http.client.HTTPConnection(url.hostname, url.port)
    response, body = exchange(first, url.path, headers, initialize_message())
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

    def caller(conn):
        def call(i):
            response, body = exchange(conn, url.path, headers, {
                "jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            })
            check(response, body, f"call {i}")
            return response.getheader("Content-Type", "")
        return call

    connections = [first] + [
        http.client.HTTPConnection(url.hostname, url.port) for _ in range(in_flight - 1)
    ]
    times, types, elapsed, cpu, errors = measure([caller(c) for c in connections], calls)
    if session:
        # End the session as the SDKs do on close, so repeated runs stay under the per-user cap.
        first.request("DELETE", url.path, headers=headers)
        first.getresponse().read()
    report(calls, in_flight, times, types, elapsed, cpu, errors, session=session is not None)


def measure(callers, calls):
    """Runs `calls` calls from one thread per caller (a function making call `i`, returning how the
    answer came), each after WARM_UP warm-up calls; returns the measured calls' times, the answer kinds,
    the wall and CPU time of the measured phase, and the failures."""
    lock = threading.Lock()
    next_id = [0]
    warm = [0]
    times = []
    types = set()
    start = threading.Barrier(len(callers) + 1, timeout=120)
    errors = []

    def take():
        with lock:
            if next_id[0] >= calls:
                return None
            next_id[0] += 1
            return next_id[0]

    def worker(call):
        try:
            work(call)
        except Exception as e:  # the first failure ends the run, named
            with lock:
                errors.append(e)
            start.abort()

    def work(call):
        # JSON-RPC ids stay unique within the session: warm-up calls count down from -1.
        for _ in range(WARM_UP):
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

    threads = [threading.Thread(target=worker, args=(c,)) for c in callers]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    began, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    return times, types, time.perf_counter() - began, time.process_time() - cpu, errors


def report(calls, in_flight, times, types, elapsed, cpu, errors, session, extra=None):
    """Prints the run's JSON report, or ends the run naming the first failure."""
    if errors:
        sys.exit(f"{len(errors)} caller(s) failed; the first: {errors[0]}")
    if len(times) != calls:
        sys.exit(f"{len(times)} of {calls} calls answered")
    times.sort()

    def percentile(p):
        return times[min(len(times) - 1, round((len(times) - 1) * p))] * 1e6

    print(json.dumps({
        "calls": calls,
        # Every request this run made (initialize, initialized, warm-up calls, calls): devgate's CPU
        # over the run divides by this.
        "requests": 2 + WARM_UP * in_flight + calls,
        "in_flight": in_flight,
        "p50_us": percentile(0.5),
        "p99_us": percentile(0.99),
        "calls_per_s": calls / elapsed,
        "driver_cpu_per_call_us": cpu / calls * 1e6,
        "session": session,
        "content_types": sorted(types),
        **(extra or {}),
    }))


def run_stdio(argv, calls, in_flight, tool, arguments):
    """The same run over stdio: every thread shares the child's pipes, as an SDK's session does."""
    child = Stdio(argv)
    try:
        child.request(initialize_message(), "initialize")
        child.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        started = child.cpu()

        def call(i):
            child.request({
                "jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }, f"call {i}")
            return "stdio"

        times, types, elapsed, cpu, errors = measure([call] * in_flight, calls)
        requests = WARM_UP * in_flight + calls
        server_cpu = (child.cpu() - started) / requests * 1e6
    finally:
        child.close()
    report(calls, in_flight, times, types, elapsed, cpu, errors, session=False,
           extra={"server_cpu_per_request_us": server_cpu})


if __name__ == "__main__":
    main()
