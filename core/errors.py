"""Errors a user can act on: the command line prints them as one message, not a traceback."""


class UserFacingError(Exception):
    """An operational problem with a message that says what to do about it."""

    exit_status = 1
