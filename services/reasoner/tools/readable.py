"""A fetched body as text a model can read: HTML reduced to its words, everything else decoded as is.

HTML goes through Beautiful Soup (its built-in ``html.parser``: no C library, lenient with the truncated
pages the size limit leaves). Scripts, styles and other markup that no reader sees are dropped; block
elements (and the line breaks of ``<pre>``) become line breaks, any other run of white space one space,
so the model pays for words, not markup.
"""

from __future__ import annotations

import codecs
import re

from bs4 import BeautifulSoup, Tag

_INVISIBLE = ("script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "head")
_BLOCKS = ("address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt", "fieldset",
           "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
           "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul")
_SPACES = re.compile(r"\s+")  # in HTML text a line break is white space like any other
_BREAK = "\ue000"  # a private-use character marking where a block ends
_HTML = {"text/html", "application/xhtml+xml"}


def is_html(media_type: str) -> bool:
    return media_type in _HTML


def is_readable(media_type: str) -> bool:
    """Text, HTML, XML and JSON are read; images, archives and other binaries are not."""
    return (media_type.startswith("text/") or media_type in _HTML
            or media_type in ("application/json", "application/xml")
            or media_type.endswith(("+json", "+xml")))


def decode(body: bytes, charset: str | None) -> str:
    """The body as text in its declared charset (UTF-8 if none or unknown); bad bytes become U+FFFD."""
    encoding = "utf-8"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            pass
    return body.decode(encoding, errors="replace")


def html_to_text(body: bytes, charset: str | None = None) -> str:
    """The readable text of an HTML page, its title first. Without a declared charset Beautiful Soup looks
    for a ``<meta charset>`` and otherwise guesses."""
    soup = BeautifulSoup(body, "html.parser", from_encoding=charset or None)
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_INVISIBLE):
        tag.decompose()
    for pre in soup.find_all("pre"):  # the one element whose line breaks are its content
        for string in pre.find_all(string=True):
            string.replace_with(string.replace("\n", _BREAK))
    for tag in soup.find_all(_BLOCKS):
        if isinstance(tag, Tag):
            tag.insert_before(_BREAK)
            tag.insert_after(_BREAK)
    for cell in soup.find_all(("td", "th")):
        cell.insert_after(" ")
    lines = (_SPACES.sub(" ", line).strip() for line in soup.get_text().split(_BREAK))
    text = "\n".join(line for line in lines if line)
    if title and not text.startswith(title):
        text = f"{title}\n\n{text}" if text else title
    return text


def readable_text(body: bytes, media_type: str, charset: str | None) -> str:
    if is_html(media_type):
        return html_to_text(body, charset)
    return decode(body, charset)
