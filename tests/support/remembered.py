"""Waiting for memory to have kept a turn: a reply is pushed (or answered by the chat API) from the reply event,
and memory records that same event on its own time, so a test's next message may come before it."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.support.platform import Platform


async def until_remembered(p: Platform, tenant: str, chat: str, text: str, timeout_s: float = 30.0) -> None:
    """Until memory (its admin listing) holds an assistant turn of ``chat`` whose text contains ``text``."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=p.url_of("memory"), timeout=10) as http:
        while True:
            convs = (await http.get("/v1/conversations", params={"tenant": tenant})).json()["items"]
            for conv in (c for c in convs if c["chat"] == chat):
                turns = (await http.get(f"/v1/conversations/{conv['conversation']}/turns",
                                        params={"tenant": tenant})).json()["items"]
                if any(t["role"] == "assistant" and text in (t["text"] or "") for t in turns):
                    return
            assert time.monotonic() < deadline, f"memory never kept {text!r} in {chat!r}"
            await asyncio.sleep(0.2)
