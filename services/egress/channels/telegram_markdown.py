"""Markdown (as LLMs write it) to Telegram's MarkdownV2, escaped as the Bot API documents.

Outside entities every one of ``_*[]()~`>#+-=|{}.!`` and ``\\`` is escaped with a backslash; inside
``code`` and ``pre`` only `````` ` `````` and ``\\``; inside the ``(...)`` of a link only ``)`` and ``\\``.
Headings become bold, list bullets "•", ``**b**``/``__b__`` bold, ``*i*``/``_i_`` italic, ``~~s~~``
strikethrough; ``> `` lines stay quotes.
"""

from __future__ import annotations

import re

SPECIAL = "\\_*[]()~`>#+-=|{}.!"
_SPECIAL_RE = re.compile("([" + re.escape(SPECIAL) + "])")
_FENCE = re.compile(r"^\s{0,3}```\s*([\w+#.-]*)\s*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_CODE = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"\[([^\]\n]+)\]\(\s*((?:[^\s()]|\([^\s()]*\))+)\s*\)")
# a marker right after a backslash is an escaped character in Markdown, never emphasis
_BOLD_ITALIC = re.compile(r"(?<!\\)\*\*\*(?=\S)(.+?)(?<=\S)(?<!\\)\*\*\*")
_BOLD = re.compile(r"(?<!\\)\*\*(?=\S)(.+?)(?<=\S)(?<!\\)\*\*|(?<!\\)__(?=\S)(.+?)(?<=\S)(?<!\\)__")
_ITALIC = re.compile(r"(?<![*\w\\])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])|(?<![_\w\\])_(?=\S)([^_\n]+?)(?<=\S)_(?![_\w])")
_STRIKE = re.compile(r"(?<!\\)~~(?=\S)(.+?)(?<=\S)(?<!\\)~~")
_HOLD = "\x00"
_HELD = re.compile(f"{_HOLD}(\\d+){_HOLD}")


def escape(text: str) -> str:
    """Plain text for MarkdownV2, outside any entity."""
    return _SPECIAL_RE.sub(r"\\\1", text)


def escape_code(text: str) -> str:
    """Inside ``code`` / ``pre``."""
    return re.sub(r"([\\`])", r"\\\1", text)


def escape_url(url: str) -> str:
    """Inside the ``(...)`` of an inline link."""
    return re.sub(r"([\\)])", r"\\\1", url)


def _nested(markers: list[str]) -> bool:
    """Whether emphasis markers open and close properly nested (Telegram refuses overlaps)."""
    stack: list[str] = []
    for m in markers:
        if stack and stack[-1] == m:
            stack.pop()
        elif m in stack:
            return False
        else:
            stack.append(m)
    return not stack


def _touching_underscores(s: str) -> bool:
    """Two italic markers side by side read as an underline marker ("__")."""
    i = 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
        elif s.startswith("__", i):
            return True
        else:
            i += 1
    return False


def _inline(text: str) -> str:
    held: list[str] = []

    def hold(s: str) -> str:
        held.append(s)
        return f"{_HOLD}{len(held) - 1}{_HOLD}"

    def escape_free(s: str) -> str:
        return "".join(p if _HELD.fullmatch(p) else escape(p) for p in re.split(f"({_HOLD}\\d+{_HOLD})", s))

    def wrap(open_: str, inner: str) -> str:
        return "".join(hold(c) for c in open_) + inner + "".join(hold(c) for c in reversed(open_))

    base = _CODE.sub(lambda m: hold(f"`{escape_code(m.group(2))}`"), text)
    base = _LINK.sub(lambda m: hold(f"[{escape_free(m.group(1))}]({escape_url(m.group(2))})"), base)
    s = _BOLD_ITALIC.sub(lambda m: wrap("*_", m.group(1)), base)
    s = _BOLD.sub(lambda m: wrap("*", m.group(1) or m.group(2)), s)
    s = _STRIKE.sub(lambda m: wrap("~", m.group(1)), s)
    s = _ITALIC.sub(lambda m: wrap("_", m.group(1) or m.group(2)), s)
    s = escape_free(s)
    markers = [held[int(i)] for i in _HELD.findall(s) if held[int(i)] in ("*", "_", "~")]
    flat = _HELD.sub(lambda m: held[int(m.group(1))] if held[int(m.group(1))] in ("*", "_", "~") else "x", s)
    if not _nested(markers) or _touching_underscores(flat):
        s = escape_free(base)  # the API would refuse or misread this emphasis: keep the words, drop the emphasis
    while _HELD.search(s):
        s = _HELD.sub(lambda m: held[int(m.group(1))], s)
    return s


def to_markdown_v2(md: str) -> str:
    md = md.replace(_HOLD, "")
    lines: list[str] = []
    fence: str | None = None  # the language of the open code block, "" for none
    for line in md.split("\n"):
        m = _FENCE.match(line)
        if m and fence is None:
            fence = m.group(1)
            lines.append(f"```{fence}")
            continue
        if fence is not None:
            if line.strip() == "```":
                fence = None
                lines.append("```")
            else:
                lines.append(escape_code(line))
            continue
        if h := _HEADING.match(line):
            inner = _inline(h.group(1).replace("**", ""))
            lines.append(f"*{inner}*" if inner else "")
        elif b := _BULLET.match(line):
            lines.append(f"{b.group(1)}• {_inline(b.group(2))}")
        elif q := _QUOTE.match(line):
            lines.append(f">{_inline(q.group(1))}")
        else:
            lines.append(_inline(line))
    if fence is not None:  # an unclosed block is closed, or Telegram refuses the whole message
        lines.append("```")
    return "\n".join(lines)
