"""Check characters of the two national identifier standards.

- Citizen ID number, GB 11643-1999: 17 digits and a check character.
- Unified social credit code, GB 32100-2015: 17 characters and a check character.

Both are used by the generator (every number it prints passes) and by its tests.
"""

from __future__ import annotations

import datetime as _dt

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"

CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I O S V Z
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

# GB 11714 organisation code (positions 9-17 of a credit code): 8 body chars + check.
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def id_check_char(body17: str) -> str:
    """Return the GB 11643 check character for 17 leading digits."""
    if len(body17) != 17 or not body17.isdigit() or not body17.isascii():
        raise ValueError(f"id number body must be 17 ascii digits, got {body17!r}")
    total = sum(int(c) * w for c, w in zip(body17, ID_WEIGHTS))
    return ID_CHECK_CHARS[total % 11]


def id_birth_date(number: str) -> _dt.date | None:
    """The birth date encoded in positions 7-14, or None when it is not a real date."""
    try:
        return _dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def id_valid(number: str) -> bool:
    """True when `number` is a well-formed GB 11643 citizen ID number."""
    if len(number) != 18 or not number[:17].isdigit() or not number[:17].isascii():
        return False
    if id_birth_date(number) is None:
        return False
    return id_check_char(number[:17]) == number[17].upper()


def credit_check_char(body17: str) -> str:
    """Return the GB 32100 check character for 17 leading characters."""
    if len(body17) != 17 or any(c not in CREDIT_CHARSET for c in body17):
        raise ValueError(f"credit code body must be 17 chars of {CREDIT_CHARSET}, got {body17!r}")
    total = sum(CREDIT_CHARSET.index(c) * w for c, w in zip(body17, CREDIT_WEIGHTS))
    return CREDIT_CHARSET[(31 - total % 31) % 31]


def credit_valid(code: str) -> bool:
    """True when `code` is a well-formed GB 32100 unified social credit code."""
    if len(code) != 18 or any(c not in CREDIT_CHARSET for c in code):
        return False
    return credit_check_char(code[:17]) == code[17]


def org_check_char(body8: str) -> str:
    """GB 11714 organisation-code check character for 8 digits/capitals ('X' for 10)."""
    total = 0
    for c, w in zip(body8, ORG_WEIGHTS):
        v = int(c) if c.isdigit() else ord(c) - ord("A") + 10
        total += v * w
    r = 11 - total % 11
    return "X" if r == 10 else "0" if r == 11 else str(r)
