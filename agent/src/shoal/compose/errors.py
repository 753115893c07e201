"""The one error of a compose file: where it is (file, line, key) and what is wrong."""

from __future__ import annotations

from shoal.errors import InvalidArgument


class ComposeError(InvalidArgument):
    """Bad compose input; the message reads `FILE:LINE: KEY: what is wrong`."""

    def __init__(self, what: str, file: str = "", line: int = 0, key: str = "") -> None:
        self.file, self.line, self.key, self.what = file, line, key, what
        where = ":".join(p for p in (file, str(line) if line else "") if p)
        text = f"{key}: {what}" if key else what
        super().__init__(f"{where}: {text}" if where else text)
