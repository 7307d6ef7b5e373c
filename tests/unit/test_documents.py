"""Reading and chunking documents for the knowledge base: Markdown by its headings, text by its paragraphs, a
real PDF made here with pypdf, bounded chunks with an overlap, and the refusals (type, empty, unreadable)."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, TextStringObject

from agentbus.documents import DocumentError, chunk_sections, kind_of, read_document
from agentbus.knowledge import PART_BYTES, add_commands, remove_command

HANDBOOK = """# Employee Handbook

Welcome to Acme.

## Leave

Everyone gets 25 days of paid leave a year.

### Parental leave

Parents get 16 weeks of paid parental leave.

```sh
# not a heading: a comment in a code block
```

## Travel

Book trains through the travel desk.
"""


def pdf_bytes(pages: list[str], title: str | None = None) -> bytes:
    """A PDF with one line of Helvetica text per page, as any PDF writer would make it."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({  # noqa: SLF001  # a shared font resource
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for text in pages:
        page = writer.add_blank_page(612, 792)
        stream = DecodedStreamObject()
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)  # noqa: SLF001
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
            {NameObject("/F1"): font}), NameObject("/ProcSet"): ArrayObject([NameObject("/PDF"), NameObject("/Text")])})
    if title:
        writer.add_metadata({NameObject("/Title"): TextStringObject(title)})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_markdown_is_cut_at_its_headings_with_their_trail_and_the_first_heading_is_the_title() -> None:
    doc = read_document(HANDBOOK.encode(), "handbook.md")
    assert doc.title == "Employee Handbook" and doc.kind == "markdown"
    assert [(c.position, c.section) for c in doc.chunks] == [
        (0, None), (1, "Leave"), (2, "Leave › Parental leave"), (3, "Travel")]
    assert doc.chunks[1].text == "Everyone gets 25 days of paid leave a year."
    assert "# not a heading" in doc.chunks[2].text, "a heading inside a code fence is text"
    assert all("Parental" not in c.text for c in doc.chunks[:2]), "a chunk never crosses a heading"


def test_long_text_is_packed_by_paragraphs_into_bounded_chunks_that_overlap() -> None:
    paragraphs = [f"Paragraph {i} says " + " ".join(f"word{i}x{j}" for j in range(40)) + "." for i in range(12)]
    doc = read_document("\n\n".join(paragraphs).encode(), "notes.txt", max_chars=600, overlap=80)
    assert doc.title == "notes" and doc.kind == "text"
    assert len(doc.chunks) > 3 and all(c.section is None for c in doc.chunks)
    for before, after in zip(doc.chunks, doc.chunks[1:], strict=False):
        assert len(after.text) <= 600 + 80 + 2
        carried = after.text.split(" ", 1)[0].lstrip("…")
        assert after.text.startswith("…") and carried in before.text, "each chunk starts with the end of the one before"
    joined = " ".join(c.text for c in doc.chunks)
    assert all(f"word{i}x39." in joined for i in range(12)), "nothing is lost"


def test_a_paragraph_longer_than_a_chunk_is_cut_at_sentences_then_words() -> None:
    sentence = "This sentence is about the coffee machine on the third floor. "
    chunks = chunk_sections([("Kitchen", sentence * 60 + "x" * 3000)], max_chars=500, overlap=0)
    assert all(len(c.text) <= 500 for c in chunks) and all(c.section == "Kitchen" for c in chunks)
    assert "".join(c.text for c in chunks).count("x") == 3000


def test_a_real_pdf_is_read_page_by_page_with_its_title() -> None:
    data = pdf_bytes(["Expense claims are filed within 30 days.", "", "Receipts are kept for seven years."],
                     title="Finance Policy")
    doc = read_document(data, "finance.pdf", "application/pdf")
    assert doc.title == "Finance Policy" and doc.content_type == "application/pdf"
    assert [(c.section, c.text) for c in doc.chunks] == [
        ("page 1", "Expense claims are filed within 30 days."), ("page 3", "Receipts are kept for seven years.")]
    untitled = read_document(pdf_bytes(["One page."]), "policy.pdf")
    assert untitled.title == "policy"


@pytest.mark.parametrize(("data", "name", "ctype", "status", "says"), [
    (b"x", "slides.pptx", None, 415, "unsupported document type"),
    (b"x", None, "image/png", 415, "unsupported document type"),
    (b"   \n\n  ", "empty.md", None, 422, "empty"),
    (b"\xff\xfe\x00h\x00i", "utf16.txt", None, 415, "not text"),
    (b"caf\xe9", "latin1.txt", None, 422, "not UTF-8"),
    (b"not a pdf at all", "fake.pdf", None, 415, "not a PDF"),
    (b"%PDF-1.7\n garbage", "broken.pdf", None, 422, "cannot be read"),
])
def test_bad_documents_are_refused_saying_why(data: bytes, name: str | None, ctype: str | None, status: int,
                                              says: str) -> None:
    with pytest.raises(DocumentError) as err:
        read_document(data, name, ctype)
    assert err.value.status == status and says in str(err.value)


def test_a_blank_pdf_has_no_text_to_load() -> None:
    with pytest.raises(DocumentError, match="empty"):
        read_document(pdf_bytes(["", ""]), "scan.pdf")


def test_the_type_is_taken_from_the_media_type_or_the_file_name() -> None:
    assert kind_of("a.md", "text/plain") == "markdown"
    assert kind_of("a.txt", "text/markdown; charset=utf-8") == "markdown"
    assert kind_of("a.PDF", "application/octet-stream") == "pdf"
    assert kind_of(None, "text/plain") == "text"


def test_a_large_document_goes_in_parts_of_bounded_size_with_stable_ids() -> None:
    text = "\n\n".join(f"Section text {i} " + "lorem ipsum dolor " * 60 for i in range(600))
    doc = read_document(text.encode(), "big.txt")
    events = add_commands("acme", doc, "cli", source="cli")
    assert len(events) > 1
    assert all(len(e.to_bytes()) < PART_BYTES + 64 * 1024 for e in events), "each event stays small for the broker"
    assert [c.position for e in events for c in e.data.chunks] == list(range(len(doc.chunks)))
    assert {e.conversation for e in events} == {f"acme/knowledge/{events[0].data.document}"}
    assert {(e.data.part, e.data.parts) for e in events} == {(i, len(events)) for i in range(len(events))}
    again = add_commands("acme", doc, "cli", source="cli", document=events[0].data.document)
    assert [e.id for e in again] == [e.id for e in events], "the same document's parts keep their ids"
    removal = remove_command("acme", events[0].data.document, "cli", source="cli")
    assert removal.id == remove_command("acme", events[0].data.document, "x", source="ingress").id
