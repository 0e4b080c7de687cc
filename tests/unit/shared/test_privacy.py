"""Pseudonyms of customer contacts: stable per contact, unlinkable without the key."""

from __future__ import annotations

import pytest

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
