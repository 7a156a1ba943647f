"""Old School RuneScape names, keyed the way Wise Old Man keys them.

Every OSRS name clanpulse stores or matches goes through :func:`normalize_osrs_name`, so a
relayed clan chat line, a roster entry and a name-change record all meet on the same key.
Matching is by exact equality of normalized names, nothing looser.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Wise Old Man replaces every character of its pattern class `[-_\s]` with a space. Its `\s`
# is the JavaScript one, which differs from Python's `str.isspace` (it includes U+FEFF and
# excludes the ASCII separators U+001C..U+001F and U+0085), so the set is spelled out here to
# produce the very same keys.
_JS_LINE_AND_CONTROL_SPACES = frozenset("\t\n\v\f\r\u2028\u2029\ufeff")

_VALID_NORMALIZED = re.compile(r"[a-z0-9](?:[a-z0-9 ]{0,10}[a-z0-9])?")


@lru_cache(maxsize=4096)
def _is_separator(char: str) -> bool:
    return char in "-_" or char in _JS_LINE_AND_CONTROL_SPACES or unicodedata.category(char) == "Zs"


def normalize_osrs_name(raw: str) -> str:
    """Return the Wise Old Man key of an OSRS name.

    Each ``-``, ``_`` and whitespace character becomes one regular space, the ends are
    trimmed, and the result is lower-cased. Inner spaces are kept exactly as they are: neither
    removed nor collapsed, because ``tide pool`` and ``tidepool`` are different accounts.
    """
    replaced = "".join(" " if _is_separator(char) else char for char in raw)
    return replaced.strip(" ").lower()


def is_valid_osrs_name(normalized: str) -> bool:
    """Tell whether a normalized name can be an OSRS account.

    That is 1-12 characters of ``[a-z0-9 ]``, not starting or ending with a space.
    """
    return _VALID_NORMALIZED.fullmatch(normalized) is not None
