"""Documents for a tenant's knowledge base: read Markdown, plain text or PDF, and cut it into chunks.

A chunk is what recall returns and the model reads, so it must be small enough to sit beside a conversation
and whole enough to make sense alone: it never crosses a heading (each keeps the heading trail it stands
under), it is made of whole paragraphs where they fit in ``max_chars``, and it starts with the end of the
chunk before it in the same section (``overlap`` characters, cut at a word), so a sentence split between two
chunks is found from either. Shared by the operator API and the command line: both refuse a bad document
before anything is published.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import PurePath

MAX_CHARS = 1200  # a chunk's text at most (about 300 tokens)
OVERLAP = 150  # characters of the chunk before carried into the next one of the same section
SECTION_SEP = " › "
KINDS = {"markdown": "text/markdown", "text": "text/plain", "pdf": "application/pdf"}
_EXTENSIONS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".pdf": "pdf"}
_TYPES = {"text/markdown": "markdown", "text/x-markdown": "markdown", "text/plain": "text", "application/pdf": "pdf"}
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SENTENCE = re.compile(r"(?<=[.!?。！？;；])\s+|(?<=[。！？；])")


class DocumentError(ValueError):
    """A document that cannot be loaded; ``status`` is the HTTP status that says why (415 type, 422 content)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Chunk:
    position: int
    section: str | None
    text: str


@dataclass(frozen=True)
class Document:
    title: str
    kind: str  # markdown, text or pdf
    chunks: tuple[Chunk, ...]

    @property
    def content_type(self) -> str:
        return KINDS[self.kind]


def kind_of(name: str | None, content_type: str | None) -> str:
    """markdown, text or pdf: by the declared media type when it names one of them, else by the file name."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in _TYPES:
        # a Markdown file sent as text/plain (what many clients say of .md) is still read as Markdown
        by_name = _EXTENSIONS.get(PurePath(name).suffix.lower()) if name else None
        return "markdown" if declared == "text/plain" and by_name == "markdown" else _TYPES[declared]
    if name and (kind := _EXTENSIONS.get(PurePath(name).suffix.lower())) is not None:
        if declared in ("", "application/octet-stream"):
            return kind
    shown = declared or (PurePath(name).suffix if name else "") or "unknown"
    raise DocumentError(f"unsupported document type {shown!r}: Markdown (.md), plain text (.txt) or PDF (.pdf)",
                        415)


def read_document(data: bytes, name: str | None = None, content_type: str | None = None,
                  title: str | None = None, max_chars: int = MAX_CHARS, overlap: int = OVERLAP) -> Document:
    """The document's title and chunks; ``DocumentError`` when it is of another type, unreadable or empty."""
    kind = kind_of(name, content_type)
    fallback = PurePath(name).stem if name else "untitled"
    sections: list[tuple[str | None, str]]
    if kind == "pdf":
        pages, pdf_title = _pdf_pages(data)
        sections = [(f"page {i}", text) for i, text in enumerate(pages, 1) if text.strip()]
        doc_title = title or pdf_title or fallback
    else:
        text = _text(data)
        if kind == "markdown":
            md_title, sections = _markdown_sections(text)
            doc_title = title or md_title or fallback
        else:
            sections = [(None, text)]
            doc_title = title or fallback
    chunks = chunk_sections(sections, max_chars, overlap)
    if not chunks:
        raise DocumentError("the document is empty: no text to load" + (" (a scanned PDF has none)"
                                                                        if kind == "pdf" else ""))
    return Document(title=_one_line(doc_title)[:300], kind=kind, chunks=tuple(chunks))


def _text(data: bytes) -> str:
    if b"\x00" in data:
        raise DocumentError("the document is not text (it holds NUL bytes)", 415)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"the document is not UTF-8 text (byte {exc.start})") from None


def _pdf_pages(data: bytes) -> tuple[list[str], str | None]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if not data.lstrip()[:5] == b"%PDF-":
        raise DocumentError("the document is not a PDF (no %PDF- header)", 415)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError("the PDF is encrypted: load an unprotected copy")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        title = str(meta.title).strip() if meta is not None and meta.title else None
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"the PDF cannot be read: {type(exc).__name__}: {exc}"[:300]) from None
    return pages, title or None


def _markdown_sections(text: str) -> tuple[str | None, list[tuple[str | None, str]]]:
    """The first level-1 heading (the title) and the text under each heading, with the trail of headings
    below the title it stands under (``Leave › Parental leave``). Headings inside code fences are text."""
    title: str | None = None
    trail: list[tuple[int, str]] = []
    sections: list[tuple[str | None, str]] = []
    lines: list[str] = []
    fenced = False

    def close() -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append((SECTION_SEP.join(h for _, h in trail) or None, body))
        lines.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        m = None if fenced else _HEADING.match(line)
        if m is None:
            lines.append(line)
            continue
        close()
        level, heading = len(m.group(1)), _one_line(m.group(2))
        if level == 1 and title is None and not sections:
            title = heading
            continue
        trail = [(lv, h) for lv, h in trail if lv < level] + [(level, heading)]
    close()
    return title, sections


def chunk_sections(sections: list[tuple[str | None, str]], max_chars: int = MAX_CHARS,
                   overlap: int = OVERLAP) -> list[Chunk]:
    """Each section's paragraphs packed into chunks of at most ``max_chars`` (plus the overlap carried from
    the chunk before), numbered across the document."""
    chunks: list[Chunk] = []
    for section, body in sections:
        previous = ""
        for piece in _pack(_paragraphs(body, max_chars), max_chars):
            carried = _tail(previous, overlap)
            chunks.append(Chunk(len(chunks), section, f"{carried} {piece}" if carried else piece))
            previous = piece
    return chunks


def _paragraphs(body: str, max_chars: int) -> list[str]:
    """The body's paragraphs (blank lines between), each at most ``max_chars``: a longer one is cut at its
    sentences, and a sentence longer still at words (or characters, for text without spaces)."""
    out: list[str] = []
    for para in re.split(r"\n[ \t]*\n", body):
        para = para.strip()
        if not para:
            continue
        if len(para) <= max_chars:
            out.append(para)
            continue
        for sentence in _SENTENCE.split(para):
            sentence = sentence.strip()
            while len(sentence) > max_chars:
                cut = sentence.rfind(" ", 0, max_chars)
                cut = cut if cut > max_chars // 2 else max_chars
                out.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence:
                out.append(sentence)
    return out


def _pack(parts: list[str], max_chars: int) -> list[str]:
    packed: list[str] = []
    current = ""
    for p in parts:
        if current and len(current) + 2 + len(p) > max_chars:
            packed.append(current)
            current = p
        else:
            current = f"{current}\n\n{p}" if current else p
    if current:
        packed.append(current)
    return packed


def _tail(text: str, n: int) -> str:
    """The last ``n`` characters of ``text``, from a word's start, marked as carried over."""
    if n <= 0 or not text:
        return ""
    if len(text) <= n:
        tail = text
    else:
        tail = text[-n:]
        space = tail.find(" ")
        tail = tail[space + 1:] if 0 <= space < n // 2 else tail
    tail = _one_line(tail)
    return f"…{tail}" if tail else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())
