"""Text that goes back to people: echoes of their input bounded, cells a spreadsheet will not run.

Whatever a user typed may come back in an error message, a log line or a CSV. Echoed whole, a
20 MB "box" would be kept per session and logged whole; opened in a spreadsheet, a cell starting
with "=" is a formula.
"""
from __future__ import annotations

MAX_ECHO = 80          # characters of a user's input quoted back in a message
MAX_TEXT_INPUT = 200   # characters any text field of the app accepts (a box needs about 30)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")   # what spreadsheets read as a formula


def bounded(text, limit: int = MAX_ECHO) -> str:
    """`text` (anything: it is str()-ed) cut to `limit` characters, saying how long it was."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def quoted(value, limit: int = MAX_ECHO) -> str:
    """A user's value quoted back in a message, as repr() would, but bounded."""
    if isinstance(value, str):
        return repr(bounded(value, limit)) if len(value) > limit else repr(value)
    return bounded(repr(value) if not isinstance(value, int) else _int_text(value), limit)


def _int_text(value: int) -> str:
    # str() of an int over 4,300 digits raises ValueError (Python's guard): describe it instead.
    try:
        return str(value)
    except ValueError:
        return f"a whole number of about {value.bit_length() * 0.30103:.0f} digits"


def spreadsheet_safe(value):
    """A cell's text with a leading ' when a spreadsheet would read it as a formula (OWASP's
    CSV-injection advice); other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
