"""Markdown (as LLMs write it) to Slack's ``mrkdwn``, and escaping of Slack's three control characters.

Slack reads ``&``, ``<`` and ``>`` as markup in every message text, so they are always sent as ``&amp;``,
``&lt;`` and ``&gt;``. mrkdwn differs from markdown: ``*bold*``, ``_italic_``, ``~strike~``,
``<url|label>`` links, no headings (made bold) and no list syntax (bullets become "•").
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_LINK = re.compile(r"\[([^\]\n]+)\]\(\s*(\S+?)\s*\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_CODE = re.compile(r"(`+)(.+?)\1")
_HOLD = "\x00"


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _inline(text: str) -> str:
    held: list[str] = []

    def hold(s: str) -> str:
        held.append(s)
        return f"{_HOLD}{len(held) - 1}{_HOLD}"

    out: list[str] = []
    pos = 0
    for m in _CODE.finditer(text):  # code spans are literal
        out.append(text[pos:m.start()])
        out.append(hold(f"`{escape(m.group(2))}`"))
        pos = m.end()
    out.append(text[pos:])
    s = "".join(out)
    s = _LINK.sub(lambda m: hold(f"<{escape(m.group(2))}|{escape(m.group(1))}>"), s)
    parts = re.split(f"({_HOLD}\\d+{_HOLD})", s)
    s = "".join(p if p.startswith(_HOLD) else escape(p) for p in parts)
    s = _BOLD.sub(lambda m: hold("*") + (m.group(1) or m.group(2)) + hold("*"), s)
    s = _ITALIC.sub(r"_\1_", s)
    s = _STRIKE.sub(r"~\1~", s)
    for _ in range(3):  # holds may nest (a link inside bold)
        s = re.sub(f"{_HOLD}(\\d+){_HOLD}", lambda m: held[int(m.group(1))], s)
    return s


def to_mrkdwn(md: str) -> str:
    md = md.replace(_HOLD, "")
    lines = []
    in_code = False
    for line in md.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            lines.append("```")
            continue
        if in_code:
            lines.append(escape(line))
            continue
        if m := _HEADING.match(line):
            lines.append(f"*{_inline(m.group(1)).replace('*', '')}*" if m.group(1) else "")
        elif m := _BULLET.match(line):
            lines.append(f"{m.group(1)}• {_inline(m.group(2))}")
        elif m := _QUOTE.match(line):
            lines.append(f"> {_inline(m.group(1))}")
        else:
            lines.append(_inline(line))
    return "\n".join(lines)
