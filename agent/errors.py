"""Errors a user can cause, each carrying one sentence that says what happened and what to do."""


class UserError(Exception):
    """Shown to the user as its message alone, never as a traceback."""
