"""Pseudonyms of customer contacts: stable per contact, unlinkable without the key."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from shared.privacy import pseudonym


KEY = b"k" * 32


def test_two_spellings_of_one_contact_share_a_pseudonym() -> None:
    assert pseudonym(KEY, "email", " Li.Wei@Example.CN ") == pseudonym(KEY, "email", "li.wei@example.cn")
    assert pseudonym(KEY, "phone", "+86 138-0013-8000") == pseudonym(KEY, "phone", "+8613800138000")


def test_a_pseudonym_reveals_nothing_and_depends_on_kind_and_key() -> None:
    p = pseudonym(KEY, "email", "li.wei@example.cn")
    assert p.startswith("email:") and len(p) == len("email:") + 32
    assert "li.wei" not in p and "example" not in p
    assert p != pseudonym(b"another key", "email", "li.wei@example.cn")
    assert pseudonym(KEY, "id", "42") != pseudonym(KEY, "phone", "42")
    assert p != pseudonym(KEY, "email", "wang.fang@example.cn")


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError):
        pseudonym(b"", "email", "li.wei@example.cn")


def test_partition_keys_carry_pseudonyms_never_contacts() -> None:
    from shared.contracts import FeedbackIn

    customer = {"id": "C-1029", "name": "李伟", "email": "Li.Wei@Example.CN", "phone": "+86 138-0013-8000"}
    for given, kind, value in ((customer, "id", "C-1029"),
                               ({"email": "Li.Wei@Example.CN", "phone": "+86 138-0013-8000"}, "email", "li.wei@example.cn"),
                               ({"phone": "+86 138-0013-8000", "name": "李伟"}, "phone", "+8613800138000")):
        fb = FeedbackIn.model_validate({"channel": "web", "text": "x", "customer": given, "location": "s-1"})
        key = fb.partition_key(KEY)
        assert key == f"customer:{pseudonym(KEY, kind, value)}"  # id, else email, else phone: as before, hashed
        assert not any(part.lower() in key.lower() for part in ("C-1029", "li.wei", "example", "138", "李伟"))
    anonymous = FeedbackIn.model_validate({"channel": "web", "text": "x", "customer": {"name": "李伟"},
                                           "location": "s-1", "touchpoint": "door"})
    assert anonymous.partition_key(KEY) == "place:s-1/door"


def test_a_customer_s_pseudonyms_are_every_contact_primary_first() -> None:
    from shared.contracts import Customer

    c = Customer(id="C-1", email="a@b.cn", phone="+86 1")
    assert c.pseudonyms(KEY) == [pseudonym(KEY, "id", "C-1"), pseudonym(KEY, "email", "a@b.cn"),
                                 pseudonym(KEY, "phone", "+86 1")]
    assert c.key(KEY) == c.pseudonyms(KEY)[0] and Customer(name="x").key(KEY) is None


@given(id=st.none() | st.text(max_size=20), email=st.none() | st.sampled_from(["a@b.cn", " A@B.cn", "x@y"]),
       phone=st.none() | st.sampled_from(["+86 1", "  ", "(010) 555"]), key=st.binary(min_size=1, max_size=40))
def test_a_customer_s_key_is_its_first_pseudonym(id, email, phone, key) -> None:  # noqa: A002
    """``key`` (intake's hot path: one HMAC) is what ``pseudonyms`` (every contact) puts first."""
    from pydantic import ValidationError

    from shared.contracts import Customer

    try:
        c = Customer(id=id, email=email, phone=phone)
    except ValidationError:
        return
    found = c.pseudonyms(key)
    assert c.key(key) == (found[0] if found else None)
