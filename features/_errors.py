"""The one error type for bad input: the command line turns it into exit code 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from a user: the message names the file/field/row and the fix."""
