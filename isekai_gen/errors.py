"""The one exception type users see.

Every bad input a user can cause (malformed config, missing file, corrupt image, garbage
prediction file) raises ``UserError`` with a single line that names the file and the problem.
The CLI prints it as ``error: <message>`` and exits non-zero, without a traceback.
"""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def where(path, line=None) -> str:
    """Format a file location for error messages: ``path`` or ``path:line``."""
    return f"{path}:{line}" if line is not None else str(path)
