"""The one exception type a user sees: a clear message naming the file and the problem."""


class EndopatError(Exception):
    """Bad input or configuration. The CLI prints the message on one line and exits with code 2."""
