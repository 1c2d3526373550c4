"""Who did it: one canonical identity per actor name.

An actor on the embedded log (and with direct log access) is *declared*, not
authenticated. What the ledger can still promise is that two spellings a person
would read as one name are one identity, so "four eyes" means two names that are
really different, and that a name cannot hide or fake what a terminal displays.

* :func:`canonical` is the name as the ledger compares it: NFKC, full case folding,
  NFKC again (Unicode's identifier caseless match, UAX #31 / Unicode 15 §3.13:
  ``NFKC(casefold(NFKC(x)))``), runs of spaces made one.
* :func:`skeleton` goes one step further, UTS #39 style: every character becomes a
  fixed representative of its class of look-alikes (the Unicode confusables data,
  as shipped by the ``confusable_homoglyphs`` package), so ``аlice`` with a Cyrillic
  ``а`` and ``alice`` have one skeleton. :func:`same_person` compares skeletons.
* :func:`check_name` refuses, for a *new* event, names that cannot be one clear
  identity: empty, control or format characters (terminal escape sequences,
  bidirectional overrides, zero-width characters), other invisible (default
  ignorable) characters, line breaks, and names mixing scripts in a confusable way.

Stored events are never re-judged by :func:`check_name` (they stay readable as
they were written); the comparisons work on any string.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from confusable_homoglyphs import confusables as _confusables

from ledger.errors import InvalidEvent

ACTOR_IDENTITY = "actor-identity"
"""Rule name of a refused actor name."""

_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "a format (invisible or direction-changing) character",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}

# Default_Ignorable_Code_Point from Unicode's DerivedCoreProperties.txt (15.1):
# characters a renderer shows as nothing. Most are Cf (caught above); the rest are
# letters and marks that display as blank (Hangul fillers, variation selectors…).
# The standard library has no accessor for this property, hence the table.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

_SPACES = re.compile(r"\s+")


def _ignorable(code: int) -> bool:
    return any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


def visible(text: str) -> str:
    """``text`` with every character a terminal would not show as itself written
    as an escape (``\\x1b``, ``\\u202e``), so a message can name a hostile value."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in _REFUSED_CATEGORIES or _ignorable(code) or (ch.isspace() and ch != " "):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def canonical(name: str) -> str:
    """The form names are compared in: NFKC(casefold(NFKC(name))), spaces collapsed,
    default-ignorable characters dropped (so a comparison ignores what no one sees)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    kept = "".join(ch for ch in folded if not _ignorable(ord(ch)))
    return _SPACES.sub(" ", kept).strip()


@lru_cache(maxsize=1)
def _prototypes() -> dict[str, str]:
    """Character → a fixed representative of its class of look-alikes.

    The package lists, for each character, the characters it can be confused with,
    but not UTS #39's prototype, and its lists are not closed (``ӏ`` lists ``i``,
    ``i`` lists others). Joining every listed pair into one class and taking the
    smallest code point of each class gives one representative per class: two
    characters that are look-alikes, even through a third, share it. Erring
    towards "same" is the safe side for four eyes."""
    parent: dict[str, str] = {}

    def find(ch: str) -> str:
        root = ch
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(ch, ch) != root:
            parent[ch], ch = root, parent[ch]
        return root

    for ch, glyphs in _confusables.confusables_data.items():
        for glyph in glyphs:
            # The data wraps right-to-left characters in LEFT-TO-RIGHT MARKs for display.
            other = glyph["c"].strip("\u200e\u200f")
            if len(other) == 1 and len(ch) == 1:
                a, b = find(ch), find(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {ch: find(ch) for ch in parent}


def skeleton(name: str) -> str:
    """UTS #39-style skeleton of the canonical form: two names with one skeleton
    look alike to a reader."""
    prototypes = _prototypes()
    decomposed = unicodedata.normalize("NFD", canonical(name))
    return unicodedata.normalize("NFD", "".join(prototypes.get(ch, ch) for ch in decomposed))


def _letters(name: str) -> tuple[str, ...]:
    """The name's characters as displayed: compatibility forms unified, invisible
    characters dropped, runs of spaces made one, decomposed (NFD) — case kept."""
    kept = "".join(ch for ch in unicodedata.normalize("NFKC", name) if not _ignorable(ord(ch)))
    return tuple(unicodedata.normalize("NFD", _SPACES.sub(" ", kept).strip()))


@lru_cache(maxsize=4096)
def _looks(ch: str) -> frozenset[str]:
    """The look-alike classes ``ch`` may be read as, in either case: ``I`` is read
    as ``l`` and as ``i``; ``ӏ`` (Cyrillic palochka) as ``i`` and, as ``Ӏ``, as ``l``."""
    prototypes = _prototypes()
    return frozenset(prototypes.get(v, v) for v in {ch, ch.lower(), ch.upper(), ch.casefold()} if len(v) == 1)


@lru_cache(maxsize=4096)
def _alike(a: str, b: str) -> bool:
    """Letter by letter, each pair can be read as one letter, in some case.

    The skeleton alone compares case-folded names, and folding loses what a
    capital looks like: ``aIice`` (capital I) folds to ``aiice``, whose skeleton is
    not ``alice``'s, though a reader sees ``alice``; all-Cyrillic ``аӏісе`` is the same
    through the palochka's capital. A per-letter relation (not closed over chains of
    look-alikes, which would make ``t`` and ``r`` one letter) catches both."""
    x, y = _letters(a), _letters(b)
    return len(x) == len(y) and all(_looks(p) & _looks(q) for p, q in zip(x, y))


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two declared names stand for one identity (case, compatibility
    forms, invisible characters and look-alike letters set aside). Erring towards
    "same" is the safe side for four eyes."""
    if a is None or b is None:
        return False
    return skeleton(a) == skeleton(b) or _alike(a, b)


def check_name(name: str, what: str = "actor") -> str:
    """``name``'s canonical form, or :class:`InvalidEvent` saying why it cannot be
    one clear identity (the offending character written visibly)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidEvent(ACTOR_IDENTITY, f"the {what} name is empty")
    return _checked_name(name, what)


@lru_cache(maxsize=4096)
def _checked_name(name: str, what: str) -> str:
    # Pure, and a writer sees the same few actors over and over: the Unicode and
    # confusables checks were a fifth of a batched append's time. A refused name
    # raises, which lru_cache does not keep, so it is judged again each time.
    for ch in name:
        code = ord(ch)
        category = unicodedata.category(ch)
        why = _REFUSED_CATEGORIES.get(category)
        if why is None and _ignorable(code):
            why = "an invisible (default-ignorable) character"
        if why is None and ch.isspace() and ch != " ":
            why = "a whitespace character other than a plain space"
        if why is not None:
            raise InvalidEvent(
                ACTOR_IDENTITY,
                f"the {what} name '{visible(name)}' holds {why} (U+{code:04X}); "
                "use the name as it is displayed"
            )
    form = canonical(name)
    if not form:
        raise InvalidEvent(ACTOR_IDENTITY, f"the {what} name is empty")
    if _confusables.is_dangerous(unicodedata.normalize("NFKC", name)):
        scripts = ", ".join(sorted(_confusables.unique_aliases(name) - {"COMMON"})).lower()
        raise InvalidEvent(
            ACTOR_IDENTITY,
            f"the {what} name {name!r} mixes scripts ({scripts}) with look-alike letters; "
            "write it in one script"
        )
    return form
