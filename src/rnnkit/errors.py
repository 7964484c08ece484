"""The one exception type for mistakes a user can fix (bad file, bad column, bad value).

The command line catches `UserError`, prints its message on one line and exits with
status 2; anything else is a bug in rnnkit and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, described in one line.

    Name the file, line and column where they are known, and the form that was expected,
    e.g. ``UserError("prices.csv, line 14, column 'close': expected a number, got 'n/a'")``.
    """
