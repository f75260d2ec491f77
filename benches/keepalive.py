#!/usr/bin/env python3
"""Latency of `tools/call` over one kept-alive HTTP/1.1 connection, as Python's http.client sees it.

    python3 benches/keepalive.py http://127.0.0.1:8080/mcp [calls] [tool] [arguments-json]

Prints the p50 and p90 in milliseconds. A server that leaves Nagle's algorithm on holds the last small
write of each SSE response until the client's delayed ACK (about 40 ms on Linux); with TCP_NODELAY the
answer arrives as soon as it is written.
"""

import http.client
import json
import statistics
import sys
import time
import urllib.parse


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    tool = sys.argv[3] if len(sys.argv) > 3 else "bitbucket_get_repository"
    arguments = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {"repo_slug": "api"}
    conn = http.client.HTTPConnection(url.hostname, url.port)
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }

    def post(message):
        conn.request("POST", url.path, json.dumps(message), headers)
        response = conn.getresponse()
        body = response.read()
        return response, body

    response, _ = post({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "keepalive", "version": "1"}},
    })
    session = response.getheader("Mcp-Session-Id")
    if session:
        headers["Mcp-Session-Id"] = session
    headers["MCP-Protocol-Version"] = "2025-11-25"
    post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    times = []
    for i in range(calls):
        started = time.perf_counter()
        response, body = post({
            "jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        })
        times.append((time.perf_counter() - started) * 1000)
        if response.status != 200 or b'"result"' not in body:
            sys.exit(f"call {i}: HTTP {response.status}: {body[:200]!r}")
    times.sort()
    print(f"p50 {statistics.median(times):.2f} ms  p90 {times[int(len(times) * 0.9)]:.2f} ms  ({calls} calls)")


if __name__ == "__main__":
    main()
