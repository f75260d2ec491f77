"""An agent on the official MCP Python SDK, driven by tests/clients.rs.

It connects to devgate over streamable HTTP with an API key, lists the tools, and calls one. Devgate
answers that the user must connect Bitbucket first, with a link; the script prints the link as a JSON
line, waits for a line on stdin (the test has followed the link by then, as a user would in a
browser), calls again and prints the result as a JSON line.
"""

import asyncio
import json
import re
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def say(**fields):
    print(json.dumps(fields), flush=True)


async def main(url: str, key: str) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    async with http, streamable_http_client(url, http_client=http) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            info = await session.initialize()
            tools = await session.list_tools()
            first = await session.call_tool("bitbucket_get_current_user", {})
            text = " ".join(c.text for c in first.content if getattr(c, "text", None))
            link = re.search(r"https?://\S+/connect/\S+", text)
            say(
                step="connect",
                protocol=info.protocol_version,
                tools=len(tools.tools),
                is_error=bool(first.is_error),
                link=link.group(0) if link else None,
            )
            sys.stdin.readline()
            second = await session.call_tool("bitbucket_get_current_user", {})
            say(step="done", is_error=bool(second.is_error), result=second.structured_content)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
