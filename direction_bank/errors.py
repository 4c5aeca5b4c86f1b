"""Errors the bank reports to users as one line."""


class BankError(Exception):
    """A problem with the user's request or data, reported as one line without a traceback."""


class UnknownConcept(BankError):
    """A concept name that the bank does not hold."""


class UnknownDirection(BankError):
    """A direction name that the bank does not hold."""


class EncoderMismatch(BankError):
    """Two pieces of data that were embedded by different text encoders."""


class FileRejected(BankError):
    """A file that is not a valid direction or concept file; nothing was stored."""


class ModelUnavailable(BankError):
    """A model that is neither a local folder nor downloadable."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class NameTaken(BankError):
    """A name already in use, which is never replaced without being asked to."""


class UnknownVersion(UnknownDirection):
    """A version a direction name does not have."""


class FieldError(BankError):
    """A bad value of one input of a request: `field` names the input (a parameter of the
    call), so a face can show the one line beside the control it came from."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class DirectionChanged(BankError):
    """A direction version that no longer holds the tensor a job measured (removed, or another
    direction saved under its name meanwhile): what the job found is not stored on it."""
