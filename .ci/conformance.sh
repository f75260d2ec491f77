#!/usr/bin/env bash
# The official MCP conformance suite against `devgate sandbox` (HTTP, simulated providers); the suite and
# Node 22 come from .ci/node-tools.sh.
# Usage: .ci/conformance.sh <path to the devgate binary>
set -euo pipefail

DEVGATE=${1:?the devgate binary}
eval "$("$(dirname "$0")/node-tools.sh")"
export PATH="$DEVGATE_NODE_BIN:$PATH"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
"$DEVGATE" sandbox --listen "127.0.0.1:$port" --buddy "127.0.0.1:$((port + 1))" \
  --bitbucket "127.0.0.1:$((port + 2))" --write-config "$work/devgate.toml" >"$work/sandbox.log" 2>&1 &
sandbox=$!
trap 'kill $sandbox 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

# The scenarios that apply to a server without the suite's fixture tools, resources and prompts (the
# README lists every scenario and why the others are left out).
failed=0
for scenario in server-initialize ping tools-list dns-rebinding-protection server-sse-polling \
  server-sse-multiple-streams; do
  if "$DEVGATE_CONFORMANCE" server --url "http://127.0.0.1:$port/mcp" \
    --scenario "$scenario" >"$work/$scenario.log" 2>&1; then
    echo "conformance: $scenario passed"
  else
    echo "conformance: $scenario FAILED"
    cat "$work/$scenario.log"
    failed=1
  fi
done
exit $failed
