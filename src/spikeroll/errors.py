"""The one exception type users see as a clean one-line message instead of a traceback."""


class SpikerollError(Exception):
    """A problem with the user's input or environment; the message names the problem and the fix."""
