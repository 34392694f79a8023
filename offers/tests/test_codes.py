"""Codes: unguessable (entropy, secrets), readable (no look-alikes), unique within the
organisation (recipient and shared codes alike), matched ignoring case and spaces."""

from __future__ import annotations

import re

from offers import codes
from offers.codes import ALPHABET, ENTROPY_BITS, code_key, code_new, codes_fresh

SHAPE = re.compile(r"^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$")


def test_codes_carry_at_least_50_bits_from_an_alphabet_without_look_alikes():
    assert ENTROPY_BITS >= 50
    assert len(set(ALPHABET)) == len(ALPHABET) == 32
    for look_alike in "0O1I":
        assert look_alike not in ALPHABET
    code = code_new()
    assert SHAPE.match(code), code
    assert code == code.upper()


def test_many_codes_never_collide_and_use_the_whole_alphabet():
    drawn = [code_new() for _ in range(20_000)]
    assert len(set(drawn)) == len(drawn)
    used = set("".join(drawn).replace("-", ""))
    assert used == set(ALPHABET)
    # no symbol is favoured: each appears close to 1/32 of the time
    text = "".join(drawn).replace("-", "")
    for symbol in ALPHABET:
        share = text.count(symbol) / len(text)
        assert abs(share - 1 / 32) < 0.004, symbol


def test_codes_come_from_the_secrets_module(monkeypatch):
    calls = []
    monkeypatch.setattr(codes.secrets, "choice", lambda seq: calls.append(1) or seq[0])
    assert code_new() == "AAAA-AAAA-AAAA"
    assert len(calls) == 12


def test_matching_ignores_case_spaces_and_dashes():
    assert code_key(" abcd-efgh-jklm ") == code_key("ABCD-EFGH-JKLM")
    assert code_key("abcd efgh jklm") == code_key("ABCDEFGHJKLM")
    assert code_key("ABCD-EFGH-JKLN") != code_key("ABCD-EFGH-JKLM")
    assert code_key(None) == ""


def test_fresh_codes_skip_codes_the_organisation_uses(in_org, monkeypatch):
    from offers.models import Offer, OfferRecipient
    from offers.tests.factories import segment_world

    world = segment_world(in_org, n=1)
    offer = Offer.objects.create(
        organization=in_org, name="Old", kind="percent", value="10", shared_code="SHAR-EDCO-DE22"
    )
    OfferRecipient.objects.create(
        organization=in_org, offer=offer, customer=world["customers"][0], code="TAKE-NCOD-E222"
    )
    drawn = iter(["TAKE-NCOD-E222", "SHAR-EDCO-DE22", "TAKE-NCOD-E222", "FRES-HCOD-E222"])
    monkeypatch.setattr(codes, "code_new", lambda: next(drawn))
    assert codes_fresh(1) == ["FRES-HCOD-E222"]


def test_another_organisations_codes_do_not_block(org, other_org, monkeypatch):
    from accounts.tenancy import tenant_context
    from offers.models import Offer

    with tenant_context(other_org):
        Offer.objects.create(
            organization=other_org, name="Theirs", kind="percent", value="5",
            shared_code="THEI-RSCO-DE22",
        )  # fmt: skip
    with tenant_context(org):
        monkeypatch.setattr(codes, "code_new", lambda: "THEI-RSCO-DE22")
        assert codes_fresh(1) == ["THEI-RSCO-DE22"]
