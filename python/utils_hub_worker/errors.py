"""Errors of the worker SDK: ServiceError (a handler's own failure) and HubError (the hub's refusals)."""

#: Longest ``code`` of a worker's failure (the ``failed`` message's ``error.code``).
MAX_ERROR_CODE_LENGTH = 128
#: Longest ``message`` of a failure or a progress message, in characters; longer ones are cut.
MAX_MESSAGE_LENGTH = 65536


class ServiceError(Exception):
    """Raised by a handler to fail its task with ``code`` (the service's own word, 1 to 128
    characters, such as ``unsupported_format``) and a ``message`` for a person. The hub hands both
    to the client as the ``worker_error`` of a ``task_failed``. Any other exception fails the task
    with ``internal`` and its message."""

    def __init__(self, code: str, message: str):
        if not isinstance(code, str) or not 1 <= len(code) <= MAX_ERROR_CODE_LENGTH:
            raise TypeError(f"ServiceError code: must be a string of 1 to {MAX_ERROR_CODE_LENGTH} characters")
        super().__init__(message)
        self.code = code
        self.message = str(message)


class HubError(Exception):
    """An error the hub sent (``{"type": "error", "code", "message"}``), such as a refused
    handshake: ``unauthorized``, ``forbidden``, ``bad_service_description``, ``service_conflict``,
    ``unsupported_protocol``, ``shutting_down``."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def cut(text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[:limit]
