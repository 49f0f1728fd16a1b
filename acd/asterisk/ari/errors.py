"""The errors an ARI request raises, one class per kind of failure the engine handles."""

from __future__ import annotations


class AriError(Exception):
    """An ARI request failed; `status` is the HTTP status when Asterisk answered at all."""

    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        where = f"ARI {method} {path}"
        text = f"{where} failed with {status}: {message}" if status else f"{where}: {message}"
        super().__init__(text)
        self.method = method
        self.path = path
        self.status = status
        self.message = message


class AriAuthError(AriError):
    """401: Asterisk refused the ARI user name or password."""


class AriNotFound(AriError):
    """404: the channel, bridge, playback or application does not exist (any more)."""


class AriConflict(AriError):
    """409: the resource is in the wrong state, e.g. the channel is not in Stasis."""


class AriBadRequest(AriError):
    """400 or 422: the request itself is wrong (missing parameter, channel not in the bridge)."""


class AriServerError(AriError):
    """5xx: Asterisk failed internally."""


class AriTimeout(AriError):
    """The request's deadline passed before Asterisk answered."""


class AriConnectionError(AriError):
    """Asterisk could not be reached (refused, reset, DNS)."""


class AriUnavailable(AriError):
    """A request that changes a call failed on every try for its whole retry budget (5xx,
    timeouts, Asterisk unreachable); `tries` says how often it was sent. Not retried again."""

    def __init__(self, last: AriError, tries: int, seconds: float) -> None:
        super().__init__(last.method, last.path, last.status,
                         f"{last.message} (gave up after {tries} tries in {seconds:.1f} s)")
        self.tries = tries


#: Failures worth another try: Asterisk busy (5xx), slow or briefly unreachable. A 4xx never
#: is: 404 means the channel or bridge is gone (the call moved on), 409 the wrong state.
TRANSIENT_ERRORS = (AriServerError, AriTimeout, AriConnectionError)

_STATUS_ERRORS: dict[int, type[AriError]] = {
    400: AriBadRequest,
    401: AriAuthError,
    404: AriNotFound,
    409: AriConflict,
    422: AriBadRequest,
}


def error_for_status(status: int) -> type[AriError]:
    """The exception class for an HTTP error status from ARI."""
    if status >= 500:
        return AriServerError
    return _STATUS_ERRORS.get(status, AriError)
