"""Clean, bounded text: what reaches a board must never be able to drive a terminal."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, StringConstraints

# Tabs and line breaks become one space (a pasted e-mail subject is still a title); every other C0/C1
# control character, DEL and the bidi overrides that can disguise text on screen are removed.
_WHITESPACE_CONTROLS = re.compile(r"[\t\n\r\v\f]+")
_OTHER_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: str) -> str:
    """Return `value` with control characters removed and whitespace runs of controls folded."""
    value = _WHITESPACE_CONTROLS.sub(" ", value)
    return _OTHER_CONTROLS.sub("", value).strip()


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


# Maximum lengths, documented in docs/protocol.md ("Limits").
MAX_TITLE = 200
MAX_NAME = 100
MAX_NOTE = 2000
MAX_ID = 64
MAX_SKILLS = 20
MAX_SKILL = 32
MAX_BULK = 500
MAX_DEDUPE_KEY = 200
MAX_REASON = 300

Title = Annotated[str, StringConstraints(max_length=MAX_TITLE), AfterValidator(clean_text), AfterValidator(_non_empty)]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME), AfterValidator(clean_text), AfterValidator(_non_empty)]
OptionalName = Annotated[str, StringConstraints(max_length=MAX_NAME), AfterValidator(clean_text)]
NoteText = Annotated[
    str, StringConstraints(max_length=MAX_NOTE), AfterValidator(clean_text), AfterValidator(_non_empty)
]
DedupeKey = Annotated[
    str, StringConstraints(max_length=MAX_DEDUPE_KEY), AfterValidator(clean_text), AfterValidator(_non_empty)
]
ReasonText = Annotated[str, StringConstraints(max_length=MAX_REASON), AfterValidator(clean_text)]
# Identifiers are typed by people at a keyboard (`alice`, `T-000042`): a strict alphabet, no cleaning.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=MAX_ID)]


def _fold_skill(value: object) -> object:
    # "Network " and "network" are the same skill; fold before the alphabet is checked.
    return value.strip().lower() if isinstance(value, str) else value


Skill = Annotated[
    str,
    BeforeValidator(_fold_skill),
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.+-]*$", max_length=MAX_SKILL),
]
