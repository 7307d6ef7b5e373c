"""The console's catalogue: both languages say everything, templates hold no text outside it, and the
language is chosen as documented (``?lang=``, then the cookie, then Accept-Language)."""

from __future__ import annotations

import re
from pathlib import Path

from agentbus.services.ingress.console import i18n
from agentbus.services.ingress.console.web import csrf_token

TEMPLATES = Path(i18n.__file__).parent / "templates"


def test_both_languages_have_the_same_keys_and_no_empty_string() -> None:
    assert set(i18n.EN) == set(i18n.ZH)
    assert all(v.strip() for v in (*i18n.EN.values(), *i18n.ZH.values()))


def test_every_key_a_template_names_is_in_the_catalogue() -> None:
    used = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""t\(\s*["']([a-z_.]+)["']\s*\)""", path.read_text()))
    assert used and used <= set(i18n.EN), used - set(i18n.EN)


def test_templates_hold_no_bare_text() -> None:
    """What a person reads comes from ``t(...)`` or from data; the markup itself carries no words."""
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text()
        text = re.sub(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", " ", text, flags=re.S)
        text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", text, flags=re.S)
        text = re.sub(r"<[^>]*>", " ", text, flags=re.S)
        words = [w for w in re.findall(r"[^\s:;()/·,.…!?&;#\-—|]+", text) if not w.startswith("&")]
        assert words == [], f"{path.name}: {words[:10]}"


def test_the_language_is_the_query_then_the_cookie_then_the_browser() -> None:
    assert i18n.negotiate(None, None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert i18n.negotiate(None, None, "zh-TW") == "zh"
    assert i18n.negotiate(None, None, "en-GB,zh;q=0.5") == "en"
    assert i18n.negotiate(None, None, "fr-FR, de") == "en"
    assert i18n.negotiate(None, None, None) == "en"
    assert i18n.negotiate(None, "zh", "en-US") == "zh"
    assert i18n.negotiate("en", "zh", "zh-CN") == "en"
    assert i18n.negotiate("klingon", None, "zh") == "zh"
    assert i18n.translator("zh")("nav.live") == "实时" and i18n.translator("en")("nav.live") == "Live"


def test_the_csrf_token_is_bound_to_the_session() -> None:
    a, b = csrf_token("header.claims.one"), csrf_token("header.claims.two")
    assert a != b and a == csrf_token("header.claims.one") and len(a) == 40
