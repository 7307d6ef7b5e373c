"""Personal data in text, found and replaced by placeholders that an external model or embeddings server reads
instead: e-mail addresses, phone numbers, Chinese resident ID-card numbers and bank-card numbers.

A ``Masker`` is one masking context (one inference): the same value always gets the same placeholder in it
(``[PHONE_1]`` for ``138 0013 8000`` and ``+86 13800138000`` alike), and ``restore`` puts the values back into
what the model wrote, so the user's own data echoed in a reply reaches them as it was.

Finding a number is the easy part; not finding the numbers that are none (dates, amounts, order numbers, codes)
is the one that matters. So a number is personal data only when it proves it: a phone number is one Google's
libphonenumber (``phonenumbers``) finds valid in its text (plus China's 11-digit mobiles, 1[3-9], which it may
not know all of yet); an ID-card number has a real date of birth and its ISO 7064 MOD 11-2 check character; a
bank-card number has a card network's first digits and its Luhn check digit. Numbers glued to letters or other
digits are parts of something else and never taken.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

import phonenumbers

from agentbus.config import PiiKind as Kind
from agentbus.config import PlatformConfig
from agentbus.metrics import PII_MASKED, child

KINDS: tuple[Kind, ...] = ("email", "id_card", "bank_card", "phone")  # the order they are looked for in
LABELS: dict[Kind, str] = {"email": "EMAIL", "phone": "PHONE", "id_card": "ID_CARD", "bank_card": "BANK_CARD"}
PLACEHOLDER = re.compile(r"\[(EMAIL|PHONE|ID_CARD|BANK_CARD)_(\d{1,5})\]")
_UNFINISHED = re.compile(r"\[[A-Z_]{0,10}\d{0,5}$")  # a placeholder a stream has not finished writing
REGION = "CN"  # numbers written without a country code are read as China's

_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
                    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])")
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])([1-8]\d{5})([ -]?)((?:19|20)\d{6})\2(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_BANK_CARD = re.compile(r"(?<![0-9A-Za-z.,_-])(?:\d{13,19}|\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?"
                        r"|\d{4}[ -]\d{6}[ -]\d{4,5})(?![0-9A-Za-z_-]|[.,]\d)")
_CN_MOBILE = re.compile(r"(?<![0-9A-Za-z+.,_-])(1[3-9]\d)([ -]?)(\d{4})\2(\d{4})(?![0-9A-Za-z_-]|[.,]\d)")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@dataclass(frozen=True)
class Found:
    kind: Kind
    start: int
    end: int
    key: str  # the value in one spelling: what makes two ways of writing it the same value


def id_card_ok(number: str) -> bool:
    """An 18-character resident ID-card number: a date of birth that exists and the MOD 11-2 check character."""
    if not re.fullmatch(r"[1-8]\d{16}[0-9Xx]", number):
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if born.year < 1900:
        return False
    check = "10X98765432"[sum(int(d) * w for d, w in zip(number, _ID_WEIGHTS, strict=False)) % 11]
    return number[17].upper() == check


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def bank_card_ok(digits: str) -> bool:
    """13-19 digits of a card network (Amex, Diners, JCB: 3; Visa: 4; Mastercard: 51-55, 2221-2720; UnionPay,
    Discover, Maestro: 6) with a Luhn check digit."""
    if not (13 <= len(digits) <= 19 and digits.isdigit()):
        return False
    network = digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720
    return network and luhn_ok(digits)


def _emails(text: str) -> Iterable[Found]:
    for m in _EMAIL.finditer(text):
        yield Found("email", m.start(), m.end(), m.group().lower())


def _id_cards(text: str) -> Iterable[Found]:
    for m in _ID_CARD.finditer(text):
        number = m.group(1) + m.group(3) + m.group(4)
        if id_card_ok(number):
            yield Found("id_card", m.start(), m.end(), number.upper())


def _bank_cards(text: str) -> Iterable[Found]:
    for m in _BANK_CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if bank_card_ok(digits):
            yield Found("bank_card", m.start(), m.end(), digits)


def _glued(text: str, start: int, end: int) -> bool:
    """Whether the characters at ``start:end`` are part of a longer token: a code (``SKU-13800138000``), a
    decimal (``13800138000.5``), a word."""
    before, after = text[max(0, start - 2):start], text[end:end + 2]
    return (bool(re.search(r"[0-9A-Za-z_.]$|[0-9A-Za-z]-$", before))
            or bool(re.match(r"[0-9A-Za-z_]|[.,-]\d", after)))


def _phones(text: str) -> Iterable[Found]:
    for m in phonenumbers.PhoneNumberMatcher(text, REGION, leniency=phonenumbers.Leniency.VALID):
        if not _glued(text, m.start, m.end):
            e164 = phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
            yield Found("phone", m.start, m.end, e164)
    for c in _CN_MOBILE.finditer(text):
        yield Found("phone", c.start(), c.end(), "+86" + c.group(1) + c.group(3) + c.group(4))


_FINDERS: dict[Kind, Callable[[str], Iterable[Found]]] = {
    "email": _emails, "id_card": _id_cards, "bank_card": _bank_cards, "phone": _phones}


def find(text: str, kinds: Iterable[Kind] = KINDS) -> list[Found]:
    """The personal data in ``text``, in order, none overlapping another: where two finders claim the same
    characters the first kind of ``KINDS`` wins (an e-mail address made of a phone number is an address)."""
    wanted = set(kinds)
    taken: list[Found] = []
    for kind in KINDS:
        if kind not in wanted:
            continue
        for f in _FINDERS[kind](text):
            if not any(f.start < t.end and t.start < f.end for t in taken):
                taken.append(f)
    return sorted(taken, key=lambda f: f.start)


@dataclass
class Masker:
    """One masking context. ``target`` names who is spared the values in the metric (``model``,
    ``embeddings``); each value is counted once, when it first gets its placeholder."""

    kinds: tuple[Kind, ...] = KINDS
    target: str = "model"
    _by_key: dict[tuple[Kind, str], str] = field(default_factory=dict)
    _values: dict[str, str] = field(default_factory=dict)  # placeholder -> the value as first written
    _counts: dict[Kind, int] = field(default_factory=dict)

    @property
    def mapping(self) -> dict[str, str]:
        return dict(self._values)

    def _placeholder(self, f: Found, written: str) -> str:
        known = self._by_key.get((f.kind, f.key))
        if known is not None:
            return known
        n = self._counts[f.kind] = self._counts.get(f.kind, 0) + 1
        placeholder = f"[{LABELS[f.kind]}_{n}]"
        self._by_key[(f.kind, f.key)] = placeholder
        self._values[placeholder] = written
        child(PII_MASKED, f.kind, self.target).inc()
        return placeholder

    def mask(self, text: str) -> str:
        if not self.kinds or not text:
            return text
        out, at = [], 0
        for f in find(text, self.kinds):
            out += [text[at:f.start], self._placeholder(f, text[f.start:f.end])]
            at = f.end
        return "".join(out) + text[at:] if out else text

    def restore(self, text: str) -> str:
        """The text with this context's placeholders back as their values (others are left as written)."""
        if not self._values or "[" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._values.get(m.group(), m.group()), text)

    def restore_partial(self, text: str) -> str:
        """``restore`` for a text still being streamed: a placeholder cut off at its end is held back, so a
        reader never sees half of one."""
        return self.restore(_UNFINISHED.sub("", text) if self._values else text)


def mask_text(text: str, kinds: Iterable[Kind], target: str) -> str:
    """``text`` masked in a context of its own (what an embeddings server is sent)."""
    return Masker(tuple(kinds), target).mask(text)


def embeddable(config: PlatformConfig | None, tenant: str, text: str) -> str:
    """What the embeddings server is sent for a text of ``tenant``: masked when the tenant masks personal data
    (the vector then stands for the words around the values, which is what recall matches on)."""
    kinds = config.masked_kinds(tenant) if config is not None else ()
    return mask_text(text, kinds, "embeddings") if kinds else text
