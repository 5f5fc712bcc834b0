"""What the project shows of text that may hold secrets or control characters: the one masking function for
passwords in URLs (logs, pages, errors, job records), names made printable for line-based reports, and CSV cells
neutralised against spreadsheet formulas (OWASP CSV injection)."""

from __future__ import annotations

import logging
import re
import unicodedata

MASK = "***"
# scheme://user:password@host  ->  scheme://user:***@host (any scheme: postgresql+psycopg, redis, rediss, amqp ...)
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<secret>[^@\s'\"]*)(?P<at>@)"
)
# ...?password=secret&...  (libpq and driver options in a query string)
_QUERY_PASSWORD = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|secret|token|sslpassword)=)(?P<secret>[^&\s'\"]*)", re.I
)
# CSV cells a spreadsheet would run as a formula (OWASP: = + - @, tab and carriage return)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def mask_secrets(text: object) -> str:
    """`text` with the password of every URL in it replaced by ***, as a query-string password is."""
    masked = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK if m['secret'] else ''}{m['at']}", str(text))
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", masked)


class MaskSecretsFilter(logging.Filter):
    """A logging filter that masks URL passwords in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def printable(name: object) -> str:
    """`name` for a line-based report: control, format and line-separator characters shown as \\uXXXX escapes, so
    a stored name can never start a line of its own."""
    text = str(name)
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs") else char
        for char in text
    )


def csv_cell(value: object) -> object:
    """A string that starts like a formula gets a leading apostrophe (OWASP); other values pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
