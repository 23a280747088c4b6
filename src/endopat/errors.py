"""The one exception type a user sees: a clear message naming the file and the problem."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from pydantic import ValidationError


class EndopatError(Exception):
    """Bad input or configuration. The CLI prints the message on one line and exits with code 2.

    The message is made one line here, whatever a user's file put into it (a class map of
    binary junk quoted back): control characters are escaped as Python writes them."""

    def __init__(self, message: object = "") -> None:
        text = str(message)
        if any(c < " " for c in text):
            text = "".join(c if c >= " " else repr(c)[1:-1] for c in text)
        super().__init__(text)


def validation_message(err: "ValidationError") -> str:
    """Every problem pydantic found, in one line: ``'a.b': message`` each, an unknown key named as such
    (the one wording of a bad config, split file or cell file)."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        else:
            parts.append(f"'{loc}': {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def describe(err: BaseException) -> str:
    """An exception in one short line: its type and the first line of its message."""
    first = next((line for line in str(err).splitlines() if line.strip()), "")
    return f"{err.__class__.__name__}: {first[:200]}" if first else err.__class__.__name__


@contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """The one catch-all of a reader of a user's file: whatever a parser raises on its bytes
    (a KeyError deep in an unpickler, a UnicodeDecodeError, a MemoryError from a header claiming
    huge dimensions) ends as one EndopatError naming the file; an EndopatError passes as it is.
    Readers put it around their whole parse, once (tests/test_fuzz_readers.py feeds them
    mutated files)."""
    try:
        yield
    except EndopatError:
        raise
    except Exception as err:  # noqa: BLE001 - any bytes: one line, never a traceback
        raise EndopatError(f"{path}: not a readable {what} ({describe(err)})") from None
