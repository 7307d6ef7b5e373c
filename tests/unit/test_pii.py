"""Finding personal data in text and masking it: every format that must be found, and the ordinary numbers
(dates, amounts, order numbers, codes) that must be left alone."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from agentbus.config import parse_config
from agentbus.pii import Masker, bank_card_ok, embeddable, find, id_card_ok, luhn_ok
from tests.support.platform import base_config


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start:f.end]) for f in find(text)]


@pytest.mark.parametrize(("text", "value"), [
    ("call +86 138 0013 8000 please", "+86 138 0013 8000"),
    ("我的手机13800138000谢谢", "13800138000"),
    ("138-0013-8000", "138-0013-8000"),
    ("138 0013 8000", "138 0013 8000"),
    ("(+86) 138-0013-8000", "(+86) 138-0013-8000"),
    ("+8613800138000", "+8613800138000"),
    ("0086 138 0013 8000", "0086 138 0013 8000"),
    ("电话：19212345678，谢谢", "19212345678"),
    ("the office: (010) 6552-9988", "(010) 6552-9988"),
    ("tel: 021-6234 5678", "021-6234 5678"),
    ("US office +1 650-253-0000", "+1 650-253-0000"),
    ("Berlin +49 30 901820", "+49 30 901820"),
    ("London +44 20 7946 0958.", "+44 20 7946 0958"),
    ("call 13800138000.", "13800138000"),
])
def test_phone_numbers_in_every_common_format(text: str, value: str) -> None:
    assert found(text) == [("phone", value)]


@pytest.mark.parametrize(("text", "value"), [
    ("write to Alice.W@Example.com today", "Alice.W@Example.com"),
    ("邮箱：zhang.san+work@mail.example.com.cn。", "zhang.san+work@mail.example.com.cn"),
    ("13800138000@qq.com", "13800138000@qq.com"),  # an address made of a phone number is one address
    ("<ops_team-1@corp.example.org>", "ops_team-1@corp.example.org"),
])
def test_email_addresses(text: str, value: str) -> None:
    assert found(text) == [("email", value)]


@pytest.mark.parametrize(("text", "value"), [
    ("身份证号11010519491231002X。", "11010519491231002X"),
    ("id 11010519491231002x", "11010519491231002x"),
    ("440308199003071235", "440308199003071235"),
    ("born 2000: 310104200012294561", "310104200012294561"),
    ("110105 19491231 002X", "110105 19491231 002X"),
    ("110105-19491231-002X", "110105-19491231-002X"),
])
def test_id_card_numbers_with_a_valid_check_character(text: str, value: str) -> None:
    assert found(text) == [("id_card", value)]


@pytest.mark.parametrize(("text", "value"), [
    ("card 4111111111111111", "4111111111111111"),
    ("4111 1111 1111 1111", "4111 1111 1111 1111"),
    ("4111-1111-1111-1111", "4111-1111-1111-1111"),
    ("Mastercard 5555555555554444", "5555555555554444"),
    ("2-series 2221000000000009", "2221000000000009"),
    ("Amex 3782 822463 10005", "3782 822463 10005"),
    ("Amex 378282246310005", "378282246310005"),
    ("Diners 30569309025904", "30569309025904"),
    ("银联卡 6222 0212 3456 7890 128", "6222 0212 3456 7890 128"),
    ("银联卡6212345678901265", "6212345678901265"),
    ("Discover 6011111111111117", "6011111111111117"),
])
def test_bank_card_numbers_with_a_luhn_check_digit(text: str, value: str) -> None:
    assert found(text) == [("bank_card", value)]


@pytest.mark.parametrize("text", [
    # dates and times
    "on 2026-12-08 10:30:15", "2026-12-08T10:30:15Z", "20261208", "2026年12月8日", "12/08/2026", "9:30-17:30",
    # timestamps and order numbers
    "ts 1765180800", "ts 1765180800123", "order 20261208123456", "order 2026120812345678",
    "tracking 1Z999AA10123456784", "SKU-13800138000", "ABC13800138000", "v13800138000", "913800138000",
    # amounts and measures
    "paid ¥1,234,567.89", "price 138,001,380.00", "13800138000.5", "total 13800 yuan", "3.14159265358979323",
    # codes and short numbers
    "code 123456", "room 12345678", "call 10086 or 12306 or 110", "12345678901", "version 3.10.12",
    "IP 192.168.1.100", "ISBN 978-7-111-54742-6", "x 0000000000000000",
    # near misses: a wrong check digit, an impossible date, no card network, glued to more digits or letters
    "4111111111111112", "1234567812345670", "9558801234567890128", "7000123456789010",
    "110105194912310021", "110105194902300020", "110105189912310023", "6222021234567890128X",
    "1110105194912310021X", "not an address: alice@localhost", "a@b",
])
def test_ordinary_numbers_are_not_personal_data(text: str) -> None:
    assert found(text) == []


def test_checksums() -> None:
    assert id_card_ok("11010519491231002X") and id_card_ok("11010519491231002x")
    assert not id_card_ok("110105194912310021")  # its check character is X
    assert not id_card_ok("110105194902300020")  # the check is right, 30 February is not
    assert not id_card_ok("010105194912310027")  # no region starts with 0
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert bank_card_ok("4111111111111111") and not bank_card_ok("411111111111")  # 12 digits: too short
    assert not bank_card_ok("7000123456789010")  # Luhn holds, no card network starts with 7


def test_one_context_gives_a_value_one_placeholder_and_restores_it() -> None:
    m = Masker()
    text = ("I'm on +86 138 0013 8000 (or 13800138000), mail Alice@Example.com or alice@example.com, "
            "id 11010519491231002X, card 4111 1111 1111 1111; my colleague: 13900001111")
    masked = m.mask(text)
    assert masked == ("I'm on [PHONE_1] (or [PHONE_1]), mail [EMAIL_1] or [EMAIL_1], id [ID_CARD_1], "
                      "card [BANK_CARD_1]; my colleague: [PHONE_2]")
    assert m.mask("again 13900001111 and a new one: 4111111111111111") == "again [PHONE_2] and a new one: [BANK_CARD_1]"
    assert m.mapping == {"[PHONE_1]": "+86 138 0013 8000", "[EMAIL_1]": "Alice@Example.com",
                         "[ID_CARD_1]": "11010519491231002X", "[BANK_CARD_1]": "4111 1111 1111 1111",
                         "[PHONE_2]": "13900001111"}
    assert m.restore("Call [PHONE_2], not [PHONE_9]; [EMAIL_1]") == "Call 13900001111, not [PHONE_9]; Alice@Example.com"
    assert Masker().restore("[PHONE_1]") == "[PHONE_1]"  # another context's placeholder means nothing here


def test_a_stream_never_shows_half_a_placeholder() -> None:
    m = Masker()
    m.mask("13800138000")
    assert m.restore_partial("Your number is [PHO") == "Your number is "
    assert m.restore_partial("Your number is [PHONE_1") == "Your number is "
    assert m.restore_partial("Your number is [PHONE_1] and") == "Your number is 13800138000 and"


def test_only_the_kinds_asked_for_are_masked() -> None:
    m = Masker(("email",))
    assert m.mask("13800138000 or a@example.com") == "13800138000 or [EMAIL_1]"
    assert Masker(()).mask("a@example.com") == "a@example.com"


def test_masked_values_are_counted_once_each_by_kind_and_target() -> None:
    def count(kind: str) -> float:
        return REGISTRY.get_sample_value("agentbus_pii_masked_total", {"kind": kind, "target": "test"}) or 0.0

    before = count("phone"), count("email")
    m = Masker(target="test")
    m.mask("13800138000, 13800138000, 13900001111 and a@example.com")
    m.mask("13800138000 again")
    assert (count("phone") - before[0], count("email") - before[1]) == (2, 1)


def test_tenant_option_off_by_default_true_for_all_or_a_list_of_kinds() -> None:
    doc = base_config(tenants=("acme", "globex", "initech"))
    doc["tenants"] = [{"id": "acme", "pii_masking": True}, {"id": "globex"},
                      {"id": "initech", "pii_masking": ["phone", "email", "phone"]}]
    cfg = parse_config(doc)
    assert cfg.masked_kinds("acme") == ("email", "phone", "id_card", "bank_card")
    assert cfg.masked_kinds("globex") == ()
    assert cfg.masked_kinds("initech") == ("phone", "email")
    assert cfg.masked_kinds("nobody") == ()
    assert embeddable(cfg, "acme", "call 13800138000") == "call [PHONE_1]"
    assert embeddable(cfg, "globex", "call 13800138000") == "call 13800138000"
    assert embeddable(None, "acme", "call 13800138000") == "call 13800138000"


def test_an_unknown_kind_is_a_configuration_error() -> None:
    from agentbus.config import ConfigError

    doc = base_config()
    doc["tenants"] = [{"id": "acme", "pii_masking": ["passport"]}, {"id": "globex"}]
    with pytest.raises(ConfigError, match="pii_masking"):
        parse_config(doc)
