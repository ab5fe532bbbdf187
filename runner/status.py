"""Exit codes scripts can trust (HTTPie's `ExitStatus`)."""

from enum import IntEnum


class ExitStatus(IntEnum):
    SUCCESS = 0
    ERROR = 1  # usage errors too: 2 means "changes present" to scripts
    CHANGES_PRESENT = 2  # plan --detailed-exitcode
    INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
