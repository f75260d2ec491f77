#!/usr/bin/env bash
# The official MCP conformance suite against `devgate sandbox` (HTTP, simulated providers); the suite and
# Node 22 come from .ci/node-tools.sh.
# Usage: .ci/conformance.sh <path to the devgate binary>
set -euo pipefail

DEVGATE=${1:?the devgate binary}
eval "$("$(dirname "$0")/node-tools.sh")"
export PATH="$DEVGATE_NODE_BIN:$PATH"

work=$(mktemp -d)
sandbox=""
trap '[ -n "$sandbox" ] && kill $sandbox 2>/dev/null; rm -rf "$work"' EXIT
# Three ports the OS hands out at once (the gateway's and the two simulated providers'). Another process
# can take one before the sandbox binds it, so a sandbox that does not come up is tried again on fresh ports.
for attempt in 1 2 3; do
  read -r port buddy bitbucket < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
  "$DEVGATE" sandbox --listen "127.0.0.1:$port" --buddy "127.0.0.1:$buddy" \
    --bitbucket "127.0.0.1:$bitbucket" --write-config "$work/devgate.toml" >"$work/sandbox.log" 2>&1 &
  sandbox=$!
  up=0
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then up=1; break; fi
    kill -0 $sandbox 2>/dev/null || break
    sleep 0.1
  done
  [ $up = 1 ] && break
  echo "conformance: the sandbox did not start (attempt $attempt):" >&2
  cat "$work/sandbox.log" >&2
  kill $sandbox 2>/dev/null || true
  sandbox=""
done
if [ -z "$sandbox" ]; then
  echo "conformance: giving up, devgate sandbox never answered /healthz" >&2
  exit 1
fi

# The scenarios that apply to a server without the suite's fixture tools, resources and prompts (the
# README lists every scenario and why the others are left out).
failed=0
for scenario in server-initialize ping tools-list logging-set-level dns-rebinding-protection server-sse-polling \
  server-sse-multiple-streams server-session-lifecycle http-header-validation sep-2164-resource-not-found \
  input-required-result-unsupported-methods; do
  if "$DEVGATE_CONFORMANCE" server --url "http://127.0.0.1:$port/mcp" \
    --scenario "$scenario" >"$work/$scenario.log" 2>&1; then
    echo "conformance: $scenario passed"
  else
    echo "conformance: $scenario FAILED"
    cat "$work/$scenario.log"
    failed=1
  fi
done
# The tasks extension's scenarios: each has checks that need the suite's fixture tools, listed as
# expected failures in conformance-tasks-baseline.yml; every other check must pass.
for scenario in tasks-capability-negotiation tasks-dispatch-and-envelope tasks-lifecycle \
  tasks-mrtr-composition tasks-mrtr-input tasks-request-headers tasks-request-state-removal \
  tasks-required-task-error tasks-status-notifications tasks-wire-fields; do
  if "$DEVGATE_CONFORMANCE" server --url "http://127.0.0.1:$port/mcp" --scenario "$scenario" \
    --expected-failures "$(dirname "$0")/conformance-tasks-baseline.yml" >"$work/$scenario.log" 2>&1; then
    echo "conformance: $scenario passed (fixture checks excepted)"
  else
    echo "conformance: $scenario FAILED"
    cat "$work/$scenario.log"
    failed=1
  fi
done
exit $failed
