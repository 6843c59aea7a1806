"""One exception type for bad input: its message names the input and the fix.

Raise ``NeuroscribeError("what is wrong with <input>; how to fix it")``; the CLI prints the
message alone (no traceback) and exits with status 2.
"""


class NeuroscribeError(ValueError):
    """Bad input or configuration, with a message that says how to fix it."""
