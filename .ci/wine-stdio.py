"""Drives devgate.exe under wine over stdio (used by .ci/cross-check.sh --run-windows): initialize,
tools/list, a list and its next page through the cursor, and a clean exit when stdin closes."""
import json
import subprocess
import sys

run = sys.argv[1]
config = "Z:" + run.replace("/", "\\") + "\\devgate.toml"
proc = subprocess.Popen(
    ["wine", f"{run}/devgate.exe", "stdio", "--config", config],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    stderr=open(f"{run}/stderr.log", "w"),
)


def send(message):
    proc.stdin.write((json.dumps(message) + "\n").encode())
    proc.stdin.flush()


def rpc(rid, method, params):
    send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    line = proc.stdout.readline()
    if not line:
        sys.exit(f"devgate.exe ended early; its stderr:\n{open(f'{run}/stderr.log').read()}")
    return json.loads(line)


init = rpc(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                             "clientInfo": {"name": "cross-check", "version": "1"}})
assert init["result"]["serverInfo"]["name"] == "devgate", init
send({"jsonrpc": "2.0", "method": "notifications/initialized"})
assert len(rpc(2, "tools/list", {})["result"]["tools"]) > 10
args = {"repo_slug": "api", "limit": 2}
first = rpc(3, "tools/call", {"name": "bitbucket_list_pull_requests", "arguments": args})["result"]
assert not first.get("isError"), first
cursor = first["structuredContent"]["next_cursor"]
second = rpc(4, "tools/call", {"name": "bitbucket_list_pull_requests",
                               "arguments": {**args, "cursor": cursor}})["result"]
assert not second.get("isError") and len(second["structuredContent"]["items"]) == 2, second
proc.stdin.close()
assert proc.wait(timeout=60) == 0, proc.returncode
print("devgate.exe under wine: initialize, tools/list and two pages over stdio ok")
