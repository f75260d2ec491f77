"""An agent on the official MCP Python SDK, driven by tests/it/clients.rs.

Usage: sdk_client.py URL API_KEY MODE, where MODE is
- `2026-07-28`: the SDK's `Client` pinned to the modern protocol; devgate asks for the connect through an
  `input_required` result, which the SDK hands to our elicitation callback and then retries by itself;
- `auto`: the SDK's default negotiation (it probes `server/discover` and settles on what devgate offers);
- `legacy`: the `initialize` handshake (2025-11-25) with an elicitation callback; devgate answers the call
  with the URL elicitation error (-32042) and later `notifications/elicitation/complete`;
- `plain`: the `initialize` handshake without an elicitation callback; devgate answers with an `isError`
  that carries the link;
- `eager`: the SDK's defaults (its own negotiation, its own retry loop) with an elicitation callback that
  answers `accept` as soon as it has shown the link, as clients do that open the browser and move on: the
  user may or may not finish meanwhile. Each round's link is printed without waiting; the call's end (a
  result, or the exception the SDK raised) is the last line.

Each step is printed as a JSON line. When a connect link shows up, the script prints it and waits for a
line on stdin: the test follows the link with an HTTP client by then, as the user would in a browser.
"""

import json
import re
import sys

import anyio
import time

from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import ElicitResult, ErrorData

URL_ELICITATION_REQUIRED = -32042


def say(**fields):
    print(json.dumps(fields), flush=True)


async def user_follows(link: str, via: str) -> None:
    say(step="connect", via=via, link=link)
    await anyio.to_thread.run_sync(sys.stdin.readline)


async def main(url: str, key: str, mode: str) -> None:
    completed = anyio.Event()

    async def on_elicitation(_context, params):
        if getattr(params, "mode", None) != "url":
            return ErrorData(code=-32602, message="this client only follows links")
        await user_follows(params.url, "elicitation")
        return ElicitResult(action="accept")

    async def on_message(message):
        if getattr(getattr(message, "root", message), "method", None) == "notifications/elicitation/complete":
            completed.set()

    async def on_elicitation_eager(_context, params):
        say(step="connect", via="elicitation", link=getattr(params, "url", None))
        return ElicitResult(action="accept")

    options = {"message_handler": on_message}
    if mode == "eager":
        options["elicitation_callback"] = on_elicitation_eager
    elif mode != "plain":
        options["elicitation_callback"] = on_elicitation
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    transport = streamable_http_client(url, http_client=http)
    client_mode = "legacy" if mode in ("legacy", "plain") else "auto" if mode == "eager" else mode
    async with http, Client(transport, mode=client_mode, **options) as client:
        tools = await client.list_tools()
        say(step="listed", protocol=client.protocol_version, tools=len(tools.tools))
        if mode == "eager":
            started = time.monotonic()
            try:
                result = await client.call_tool("bitbucket_get_current_user", {})
            except Exception as error:  # the test wants to see what the agent would have got
                say(step="raised", error=type(error).__name__, message=str(error))
                return
            say(
                step="done",
                is_error=bool(result.is_error),
                text=" ".join(c.text for c in result.content if getattr(c, "text", None)),
                result=result.structured_content,
                seconds=round(time.monotonic() - started, 2),
            )
            return
        try:
            result = await client.call_tool("bitbucket_get_current_user", {})
        except MCPError as error:
            if error.code != URL_ELICITATION_REQUIRED:
                raise
            for elicitation in (error.error.data or {}).get("elicitations", []):
                await user_follows(elicitation["url"], "error")
            with anyio.fail_after(30):
                await completed.wait()
            result = await client.call_tool("bitbucket_get_current_user", {})
        if result.is_error and mode == "plain":
            text = " ".join(c.text for c in result.content if getattr(c, "text", None))
            link = re.search(r"https?://\S+/connect/\S+", text)
            await user_follows(link.group(0) if link else "", "is_error")
            result = await client.call_tool("bitbucket_get_current_user", {})
        say(
            step="done",
            is_error=bool(result.is_error),
            result=result.structured_content,
            completed=completed.is_set(),
        )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
