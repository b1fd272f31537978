"""The one exception type the package raises for problems a user can fix."""

from __future__ import annotations


class LenetError(Exception):
    """A user-facing error: bad data, a bad argument, a file that would be overwritten.

    The message is one line naming the file, line, field or value at fault; the command line
    prints it without a traceback and exits non-zero.
    """
