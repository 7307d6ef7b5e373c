"""What the model reads of a fetched body: HTML reduced to its words, other text decoded as declared."""

from __future__ import annotations

import pytest

from agentbus.services.reasoner.tools.readable import decode, html_to_text, is_readable, readable_text


def test_blocks_become_lines_and_inline_markup_disappears() -> None:
    html = b"""<html><head><title> Docs </title><meta charset="utf-8"></head><body>
      <div><h2>Install</h2><p>Run <code>pip   install</code>
      <a href="/x">agentbus</a>.</p><pre>line one
  line two</pre><table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>
      <script>alert(1)</script><style>p{}</style><template><p>hidden</p></template><br>end</div>"""
    assert html_to_text(html) == "Docs\n\nInstall\nRun pip install agentbus.\nline one\nline two\na b\nc\nend"


def test_a_meta_charset_is_used_when_the_header_declares_none() -> None:
    html = '<html><head><meta charset="windows-1251"></head><body><p>Привет</p></body></html>'
    assert html_to_text(html.encode("windows-1251")) == "Привет"
    assert html_to_text("<p>Grüße</p>".encode("iso-8859-1"), "iso-8859-1") == "Grüße"


def test_a_page_cut_in_the_middle_still_reads() -> None:
    assert html_to_text(b"<html><body><p>first</p><p>second par") == "first\nsecond par"


def test_text_is_decoded_as_declared_and_bad_bytes_are_replaced() -> None:
    assert decode("naïve".encode("latin-1"), "latin-1") == "naïve"
    assert decode("naïve".encode(), "no-such-charset") == "naïve"
    assert decode(b"ok \xff", None) == "ok \ufffd"
    assert readable_text(b'{"a": 1}', "application/json", None) == '{"a": 1}'


@pytest.mark.parametrize(("media_type", "ok"), [
    ("text/html", True), ("text/plain", True), ("text/csv", True), ("application/json", True),
    ("application/ld+json", True), ("application/xml", True), ("application/atom+xml", True),
    ("application/xhtml+xml", True), ("image/png", False), ("application/octet-stream", False),
    ("application/pdf", False), ("application/zip", False),
])
def test_only_text_like_media_types_are_read(media_type: str, ok: bool) -> None:
    assert is_readable(media_type) is ok
