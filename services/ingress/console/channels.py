"""The Channels page: the state of each of the tenant's channels as every ingress replica sees it (the API's
``GET /tenants/{t}/channel-states``: webhook requests, the long connection, the last error), and the setup
steps of a platform, ``docs/channels/<platform>.md`` rendered here.

The Markdown is rendered with markdown-it-py's CommonMark parser (plus tables) with raw HTML off, so a
``<script>`` in a document is shown as text, and link targets are checked by the parser (no ``javascript:``).
Headings move two levels down under the page's own, and links to another platform's document stay on this
page. The documents ship inside the package (``agentbus/channel_docs`` in the wheel); from a source checkout
they are read from ``docs/channels``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import agentbus
from agentbus.services.ingress.console.web import render, session

PLATFORMS = ("webhook", "feishu", "dingtalk", "wecom", "slack", "telegram")
SIBLING = re.compile(r"^([a-z]+)\.md(#[\w-]*)?$")


def docs_dir() -> Path | None:
    here = Path(agentbus.__file__).resolve().parent
    for candidate in (here / "channel_docs", here.parents[1] / "docs" / "channels"):
        if (candidate / "webhook.md").is_file():
            return candidate
    return None


def render_doc(text: str) -> str:
    """Markdown as HTML for a page: raw HTML escaped, headings two levels down, sibling documents linked here."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    tokens = md.parse(text)
    for tok in tokens:
        if tok.type in ("heading_open", "heading_close"):
            tok.tag = f"h{min(int(tok.tag[1]) + 2, 6)}"
        for child in tok.children or []:
            href = str(child.attrGet("href") or "")
            found = SIBLING.match(href) if child.type == "link_open" else None
            if found and found.group(1) in PLATFORMS:
                child.attrSet("href", f"?platform={found.group(1)}#setup")
    return str(md.renderer.render(tokens, md.options, {}))


@functools.lru_cache(maxsize=len(PLATFORMS))
def setup_html(platform: str) -> str | None:
    """The platform's document as HTML (None: no document for it in this installation)."""
    folder = docs_dir()
    if platform not in PLATFORMS or folder is None or not (folder / f"{platform}.md").is_file():
        return None
    return render_doc((folder / f"{platform}.md").read_text(encoding="utf-8"))


async def channels_page(request: Request) -> Response:
    ctx = await session(request)
    states: dict[str, Any] = await ctx.api.get(f"/tenants/{ctx.tenant}/channel-states") if ctx.tenant else \
        {"channels": [], "replicas": [], "fresh_s": 0, "as_of": None}
    asked = request.query_params.get("platform", "")
    first = next((c["type"] for c in states["channels"] if c["type"] in PLATFORMS), "webhook")
    platform = asked if asked in PLATFORMS else first
    status = 404 if asked and asked not in PLATFORMS else 200
    return render(ctx, "channels.html", status=status, states=states, platforms=PLATFORMS, platform=platform,
                  unknown=asked[:40] if status == 404 else None, setup=setup_html(platform))


routes = [Route("/channels", channels_page, methods=["GET"])]
