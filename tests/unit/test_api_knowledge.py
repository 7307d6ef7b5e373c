"""The knowledge base endpoints of the operator API against fakes: an upload is chunked and published as
``knowledge.requested`` parts with its audit; every bad upload is a clear 4xx with nothing published."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agentbus.events import AuditRecorded, KnowledgeRequested
from agentbus.knowledge import MAX_DOCUMENT_BYTES
from agentbus.services.ingress.api.ports import Reads
from tests.unit.fakes_api import served_api
from tests.unit.test_documents import HANDBOOK, pdf_bytes

UPLOAD = "/tenants/acme/knowledge"


class FakeKnowledge:
    def __init__(self) -> None:
        self.docs: dict[str, list[dict[str, Any]]] = {}

    async def documents(self, tenant: str, removed: bool = False) -> list[dict[str, Any]]:
        return self.docs.get(tenant, [])


def reads(kb: FakeKnowledge) -> Reads:
    unused: Any = object()
    return Reads(history=unused, deliveries=unused, inferences=unused, trace=unused, knowledge=kb)


async def test_a_markdown_upload_is_published_chunked_with_its_audit() -> None:
    async with served_api() as api:
        op = await api.token("acme", "operator", name="ops")
        resp = await api.call("POST", UPLOAD + "?name=handbook.md", op, content=HANDBOOK.encode(),
                              headers={"content-type": "text/markdown"})
        assert resp.status_code == 202, resp.text
        body = resp.json()
        assert (body["title"], body["chunks"], body["parts"]) == ("Employee Handbook", 4, 1)
        cmd, audit = api.publisher.published
        assert isinstance(cmd, KnowledgeRequested) and isinstance(audit, AuditRecorded)
        assert (cmd.tenant, cmd.data.action, cmd.data.source, cmd.data.requested_by) == (
            "acme", "add", "handbook.md", audit.data.actor)
        assert str(cmd.data.document) == body["document_id"] and cmd.conversation.startswith("acme/knowledge/")
        assert [c.section for c in cmd.data.chunks] == [None, "Leave", "Leave › Parental leave", "Travel"]
        assert (audit.data.action, audit.data.target, audit.data.outcome) == ("knowledge.add", body["document_id"],
                                                                              "ok")


async def test_a_pdf_upload_is_read_with_pypdf() -> None:
    async with served_api() as api:
        op = await api.token("acme", "operator")
        resp = await api.call("POST", UPLOAD, op, content=pdf_bytes(["Claims within 30 days."], title="Finance"),
                              headers={"content-type": "application/pdf"})
        assert resp.status_code == 202, resp.text
        [cmd, _] = api.publisher.published
        assert cmd.data.title == "Finance" and cmd.data.chunks[0].text == "Claims within 30 days."


@pytest.mark.parametrize(("path", "content", "ctype", "status", "says"), [
    (UPLOAD + "?name=deck.pptx", b"PK\x03\x04", "application/vnd.ms-powerpoint", 415, "unsupported document type"),
    (UPLOAD, b"\x89PNG\r\n", "image/png", 415, "unsupported document type"),
    (UPLOAD + "?name=empty.md", b"", "text/markdown", 422, "empty"),
    (UPLOAD + "?name=blank.txt", b"  \n\n ", "text/plain", 422, "empty"),
    (UPLOAD + "?name=headings.md", b"# Title only\n\n## Nothing below\n", "text/markdown", 422, "empty"),
    (UPLOAD, b"caf\xe9 au lait", "text/plain", 422, "not UTF-8"),
    (UPLOAD, b"%PDF-1.4 truncated", "application/pdf", 422, "PDF cannot be read"),
    (UPLOAD, b"x" * (MAX_DOCUMENT_BYTES + 1), "text/plain", 413, "larger than"),
    ("/tenants/initech/knowledge", b"hello", "text/plain", 404, "no tenant"),
    ("/tenants/globex/knowledge", b"hello", "text/plain", 404, "no tenant"),
])
async def test_bad_uploads_are_refused_and_nothing_is_published(path: str, content: bytes, ctype: str, status: int,
                                                               says: str) -> None:
    async with served_api() as api:
        op = await api.token("acme", "operator")
        resp = await api.call("POST", path, op, content=content, headers={"content-type": ctype})
        assert resp.status_code == status, resp.text
        assert says in resp.json()["error"]
        assert not [e for e in api.publisher.published if isinstance(e, KnowledgeRequested)]


async def test_a_viewer_may_list_but_not_load_or_remove() -> None:
    kb = FakeKnowledge()
    doc_id = str(uuid.uuid4())
    kb.docs["acme"] = [{"id": doc_id, "title": "Handbook", "source": "handbook.md", "content_type": "text/markdown",
                        "parts": 1, "parts_loaded": 1, "chunks": 4, "loaded_at": "2026-12-01T09:00:00+00:00",
                        "requested_by": "cli", "removed_at": None}]
    async with served_api(reads=reads(kb)) as api:
        viewer = await api.token("acme", "viewer")
        listed = await api.call("GET", UPLOAD, viewer)
        assert listed.status_code == 200 and [d["title"] for d in listed.json()] == ["Handbook"]
        resp = await api.call("POST", UPLOAD, viewer, content=b"hello", headers={"content-type": "text/plain"})
        assert resp.status_code == 403
        assert (await api.call("DELETE", f"{UPLOAD}/{doc_id}", viewer)).status_code == 403
        assert not [e for e in api.publisher.published if isinstance(e, KnowledgeRequested)]


async def test_removing_publishes_one_command_per_document_and_an_unknown_one_is_a_404() -> None:
    kb = FakeKnowledge()
    doc_id = str(uuid.uuid4())
    kb.docs["acme"] = [{"id": doc_id, "title": "Handbook", "parts": 1, "parts_loaded": 1, "chunks": 4,
                        "requested_by": "cli"}]
    async with served_api(reads=reads(kb)) as api:
        op = await api.token("acme", "operator")
        missing = await api.call("DELETE", f"{UPLOAD}/{uuid.uuid4()}", op)
        assert missing.status_code == 404 and not api.publisher.published
        first = await api.call("DELETE", f"{UPLOAD}/{doc_id}", op)
        second = await api.call("DELETE", f"{UPLOAD}/{doc_id}", op)
        assert first.status_code == second.status_code == 202
        assert first.json()["command_id"] == second.json()["command_id"], "asking twice is one command"
        removal = [e for e in api.publisher.published if isinstance(e, KnowledgeRequested)]
        assert {(e.data.action, str(e.data.document)) for e in removal} == {("remove", doc_id)}
        assert (await api.call("DELETE", f"{UPLOAD}/not-a-uuid", op)).status_code == 422
