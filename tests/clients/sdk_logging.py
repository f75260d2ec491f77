"""An agent on the official MCP Python SDK that listens to log messages, driven by tests/it/logging.rs.

Usage: sdk_logging.py URL MODE, where MODE is
- `default`: the SDK's `Client` with its defaults (it negotiates the protocol itself) and `log_level`,
  the per-request opt-in of 2026-07-28;
- `legacy`: the `initialize` handshake and `set_logging_level`, the session's level before 2026.

It reads one repository (the test makes the first attempt fail once) and prints one JSON line: the
protocol it settled on, whether the call failed, and every log message its `logging_callback` got.
"""

import json
import sys
import warnings

import anyio

from mcp import Client


async def main(url: str, mode: str) -> None:
    got = []

    async def on_log(params):
        got.append({"level": params.level, "logger": params.logger, "data": params.data})

    if mode == "legacy":
        client = Client(url, mode="legacy", logging_callback=on_log)
    else:
        client = Client(url, logging_callback=on_log, log_level="info")
    async with client:
        if mode == "legacy":
            with warnings.catch_warnings():
                # The SDK marks the 2025 logging request deprecated; it is what a 2025 session uses.
                warnings.simplefilter("ignore")
                await client.set_logging_level("info")
        result = await client.call_tool("bitbucket_get_repository", {"repo_slug": "api"})
        print(
            json.dumps(
                {
                    "protocol": client.protocol_version,
                    "is_error": bool(result.is_error),
                    "messages": got,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
