import logging
import re

# A path followed by a query string, as request lines and URLs appear in log messages.
_QUERY = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")


class RedactQueryStrings(logging.Filter):
    """Removes query strings from log messages: searches carry MRNs and names (``?mrn=...``).

    Paths are kept; they hold only opaque ids.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg = _QUERY.sub(r"\1?[redacted]", message)
            record.args = None
        return True
