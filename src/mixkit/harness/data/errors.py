"""The error every data reader of the harness raises for a bad file."""

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A data file is malformed, corrupt or truncated, or the files of a data set disagree with each other.

    The message names the file, what was expected and what was found.
    """
