"""Errors that come from a user's input, reported by the CLI as one line with a non-zero exit."""


class UserError(Exception):
    """Bad input a user can fix (a file, a row, a parameter). Never shown with a traceback."""


class NonFiniteLossError(UserError):
    """A loss became NaN or infinite: training diverged under these parameters. The last good
    checkpoint is kept; the message names the run, epoch and step."""
