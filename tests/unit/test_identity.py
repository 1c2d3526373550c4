"""Actor names: one canonical identity per person, hostile names refused. Pure."""

from __future__ import annotations

import pytest

from ledger import identity
from ledger.errors import InputError

SAME = [
    # (a, b): a person reads these as one name
    ("alice", "Alice"),
    ("alice", "ALICE"),
    ("alice", "\uff21\uff2c\uff29\uff23\uff25"),  # fullwidth ＡＬＩＣＥ
    ("strasse", "Stra\u00dfe"),  # case folding: ß is ss
    ("alice", "\u0430lice"),  # Cyrillic а
    ("ace", "\u0430\u0441\u0435"),  # all Cyrillic look-alikes: асе
    ("alice", "a\u200blice"),  # zero-width space
    ("alice", "alice\u202e"),  # right-to-left override
    ("jose garcia", "Jose  Garcia"),
    ("jos\u00e9", "jose\u0301"),  # composed and decomposed é
    # Case folding loses what a capital looks like: these pass the skeleton of the
    # folded names and were accepted as a second pair of eyes.
    ("alice", "aIice"),  # capital I for l, plain ASCII
    ("alice", "AIice"),
    ("bill", "biII"),
    ("alice", "\u0430\u04cf\u0456\u0441\u0435"),  # all Cyrillic аӏісе (palochka for l)
    ("alice", "\u0410\u04c0\u0406\u0421\u0415"),  # АӀІСЕ
]

DIFFERENT = [("alice", "bob"), ("alice", "alicia"), ("zoe", "Zo\u00eb"), ("jose", "jos\u00e9"), ("tom", "rom"), ("tim", "kim")]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_one_identity(a, b):
    assert identity.same_person(a, b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_identities(a, b):
    assert not identity.same_person(a, b)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("Alice", "alice"), ("\uff21lice", "alice"), ("Stra\u00dfe", "strasse"), ("Jos\u00e9  Garc\u00eda", "jos\u00e9 garc\u00eda"), ("\u5c71\u7530", "\u5c71\u7530"), ("svc-ci.bot_1", "svc-ci.bot_1")],
)
def test_accepted_names_and_their_canonical_form(name, canonical):
    assert identity.check_name(name) == canonical


BAD = [
    ("", "empty"),
    ("   ", "empty"),
    ("alice\x1b[2Kbob", "control character"),  # erase-line escape sequence
    ("ali\x07ce", "control character"),
    ("alice\nbob", "control character"),
    ("alice\u202e", "format"),  # bidi override
    ("a\u200blice", "format"),  # zero-width space
    ("a\u200dlice", "format"),  # zero-width joiner
    ("al\u00adice", "format"),  # soft hyphen
    ("alice\ufe0f", "invisible"),  # variation selector
    ("\u3164", "invisible"),  # Hangul filler: a blank letter
    ("alice\u2028", "line separator"),
    ("alice\ue000", "private-use"),
    ("\u0430lice", "mixes scripts"),  # Cyrillic а among Latin letters
    ("\u0391lice", "mixes scripts"),  # Greek Α
]


@pytest.mark.parametrize(("name", "why"), BAD)
def test_refused_names(name, why):
    with pytest.raises(InputError) as caught:
        identity.check_name(name)
    message = str(caught.value)
    assert message.startswith(identity.ACTOR_IDENTITY)
    assert why in message
    # The message itself never carries the hostile character to a terminal.
    assert "\x1b" not in message and "\u202e" not in message and "\n" not in message


def test_visible_escapes_what_a_terminal_would_hide():
    assert identity.visible("a\x1b[31mb\u202ec\\") == "a\\x1b[31mb\\u202ec\\\\"
