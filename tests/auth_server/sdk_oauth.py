"""A remote MCP client on the official Python SDK's OAuth client provider, driven by tests/auth_server_sdk.rs.

Usage: sdk_oauth.py MCP_URL MODE [ACCOUNT], where ACCOUNT is a Bitbucket account at the sim (signing in
with it), or `idp:USER` to sign in through the simulated identity provider as USER (ada, bob, cyd), and
MODE is
- `dcr`: the SDK registers itself at devgate's /register (RFC 7591);
- `cimd`: the SDK presents a Client ID Metadata Document, which this script serves over https on
  loopback (a certificate made with openssl for the run; devgate on loopback accepts it there only);
- `serve-document SIZE`: only serve a metadata document padded to SIZE bytes and print its URL, for
  devgate's refusals (the test ends the process).

The redirect handler is the user's browser: an HTTP client with a cookie jar that follows devgate's
/login page, the simulated provider's sign-in and consent page (as ACCOUNT), the callback, devgate's
consent page, and the redirect to this client's callback, whose code and state it hands to the SDK. With
`idp:USER` it presses the identity provider's button on /login and signs in on the provider's page.

Each step is printed as a JSON line (never a token). After the tools are called and the token refreshed,
the script waits for a line on stdin: the test revokes the grant meanwhile, and the script then shows
that the old access and refresh tokens are refused.
"""

import hashlib
import html
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx2

from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT_URI = "http://127.0.0.1:9/sdk-callback"


def say(**fields):
    print(json.dumps(fields), flush=True)


def texts(result):
    return " ".join(c.text for c in result.content if getattr(c, "text", None))


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull):
        self.client = client_info


def serve_document(size=None):
    """Serves this client's metadata document over https on loopback; returns its URL."""
    workdir = tempfile.mkdtemp(prefix="devgate-cimd-")
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    state = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(state["document"]).encode()
            if size:
                body = body[:-1] + b', "padding": "' + b"x" * max(0, size - len(body) - 15) + b'"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=300")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    url = f"https://127.0.0.1:{server.server_address[1]}/oauth/client-metadata.json"
    state["document"] = {
        "client_id": url,
        "client_name": "Python SDK test client",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return url


def first_form(page, url):
    """The action and hidden fields of the first form of a page."""
    form = re.search(r"<form[^>]*action=\"([^\"]*)\"", page)
    fields = {
        html.unescape(n): html.unescape(v)
        for n, v in re.findall(r"<input type=\"hidden\" name=\"([^\"]*)\" value=\"([^\"]*)\"", page)
    }
    return urljoin(url, html.unescape(form.group(1))), fields


class Browser:
    """The user's browser: follows devgate's and the provider's pages with a cookie jar."""

    def __init__(self, account):
        self.idp_user = account[4:] if account.startswith("idp:") else None
        self.account = account
        self.http = httpx2.AsyncClient(follow_redirects=False, timeout=30)
        self.result = None
        self.pages = 0

    async def follow(self, response):
        while response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(REDIRECT_URI):
                return target
            response = await self.http.get(target)
        return response

    async def redirect_handler(self, authorization_url):
        say(step="authorize", has_resource="resource=" in authorization_url)
        page = await self.follow(await self.http.get(authorization_url))
        while not isinstance(page, str):
            self.pages += 1
            text, url = page.text, str(page.url)
            if page.status_code != 200:
                shown = re.sub(r"<[^>]+>", " ", text[text.find("<main>") :])
                raise RuntimeError(f"{url} answered {page.status_code}: {shown[:400]}")
            if url.endswith("/login"):
                button = "/login/oidc/start" if self.idp_user else "/login/bitbucket"
                action = re.search(f"action=\"({button})\"", text).group(1)
                _, fields = first_form(text[text.find(action) - 40 :], url)
                page = await self.follow(await self.http.post(urljoin(url, action), data=fields))
            elif url.endswith("/consent"):
                action, fields = first_form(text, url)
                fields["decision"] = "allow"
                page = await self.follow(await self.http.post(action, data=fields))
            elif self.idp_user:  # the identity provider's sign-in page
                action, fields = first_form(text, url)
                fields.update(user=self.idp_user, decision="allow")
                page = await self.follow(await self.http.post(action, data=fields))
            else:  # the provider's sign-in and consent page
                action, fields = first_form(text, url)
                fields.update(account=self.account, decision="allow")
                page = await self.follow(await self.http.post(action, data=fields))
        query = parse_qs(urlparse(page).query)
        self.result = AuthorizationCodeResult(
            code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
        )

    async def callback_handler(self):
        return self.result


async def main(url, mode, account):
    if mode == "serve-document":
        say(step="serving", url=serve_document(int(account)))
        await anyio.to_thread.run_sync(sys.stdin.readline)
        return
    document_url = serve_document() if mode == "cimd" else None
    storage = Memory()
    browser = Browser(account)
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="Python SDK test client",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
        client_metadata_url=document_url,
    )
    http = create_mcp_http_client(auth=provider)
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        tools = await client.list_tools()
        say(
            step="signed-in",
            client_id=storage.client.client_id,
            scope=storage.tokens.scope,
            tools=len(tools.tools),
            names=sorted(t.name for t in tools.tools),
            pages=browser.pages,
        )
        if browser.idp_user:
            # The user is not connected to Bitbucket: an allowed call answers with a connect link, a
            # call the policy denies names the policy.
            pr = {"repo_slug": "api", "pull_request_id": 24}
            listed = await client.call_tool("bitbucket_list_pull_requests", {"repo_slug": "api"})
            approved = await client.call_tool("bitbucket_approve_pull_request", pr)
            # The connect link's ticket is not printed: only whether the answer is one, or a denial.
            say(
                step="called",
                read_denied="denied" in texts(listed),
                read_connect="/connect/bitbucket" in texts(listed),
                write=texts(approved) if "denied" in texts(approved) else re.sub(r"ticket=[^\s)\]]*", "ticket=…", texts(approved))[:300],
                write_error=bool(approved.is_error),
            )
        else:
            result = await client.call_tool("bitbucket_get_current_user", {})
            say(step="called", is_error=bool(result.is_error), result=result.structured_content)
        first = digest(storage.tokens.access_token)
        # The access token has run out (as far as the client knows): the next request refreshes it.
        provider.context.token_expiry_time = time.time() - 1
        if browser.idp_user:
            result = await client.call_tool("bitbucket_list_pull_requests", {"repo_slug": "api"})
        else:
            result = await client.call_tool("bitbucket_list_repositories", {})
        say(
            step="refreshed",
            is_error=bool(result.is_error),
            denied="denied" in texts(result),
            changed=digest(storage.tokens.access_token) != first,
        )
    old_access, old_refresh = storage.tokens.access_token, storage.tokens.refresh_token
    say(step="waiting")
    await anyio.to_thread.run_sync(sys.stdin.readline)
    base = url.rsplit("/mcp", 1)[0]
    # One connection each: a server may close a connection whose request body it refused unread.
    async with httpx2.AsyncClient(timeout=30) as plain:
        mcp = await plain.post(
            url,
            headers={"Authorization": f"Bearer {old_access}", "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
    async with httpx2.AsyncClient(timeout=30) as plain:
        refresh = await plain.post(
            f"{base}/token",
            data={"grant_type": "refresh_token", "refresh_token": old_refresh, "client_id": storage.client.client_id},
        )
    say(step="after-revoke", mcp=mcp.status_code, refresh=refresh.status_code, error=refresh.json().get("error"))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "ann")
