"""OPC UA failures as one readable line, and asyncua's own noise about them kept out of the log.

`describe` says what went wrong with a server in the words of `mes edge check` and the
Modbus driver ("cannot connect to ...: connection refused (is the server running?)"), not as
a raw exception tuple. `quiet_asyncua` stops asyncua from logging an ERROR traceback
("Publish iteration crashed") when a server simply goes away: the driver reports that loss
itself, once. Anything else asyncua logs is left alone.
"""

from __future__ import annotations

import logging
import socket

from asyncua import ua

# The status codes a server's ordinary going away ends a publish request with.
_CONNECTION_ENDED = frozenset({
    ua.StatusCodes.BadShutdown, ua.StatusCodes.BadServerHalted,
    ua.StatusCodes.BadSessionClosed, ua.StatusCodes.BadSessionIdInvalid,
    ua.StatusCodes.BadConnectionClosed, ua.StatusCodes.BadSecureChannelClosed,
    ua.StatusCodes.BadCommunicationError, ua.StatusCodes.BadNotConnected,
})  # fmt: skip
_PUBLISH_LOGGER = "asyncua.client.ua_session.UaSession"


def connection_ended(e: BaseException) -> bool:
    """Whether `e` is a server or network going away (not a bug, not a refusal of a request)."""
    if isinstance(e, ua.UaStatusCodeError):
        return e.code in _CONNECTION_ENDED
    return isinstance(e, ConnectionError | TimeoutError | OSError)


def describe(e: BaseException, endpoint: str) -> str:
    """One line saying what failed, for a tag's error and the log."""
    if isinstance(e, ConnectionRefusedError):
        return f"cannot connect to {endpoint}: connection refused (is the server running?)"
    if isinstance(e, socket.gaierror):
        return f"cannot connect to {endpoint}: unknown host"
    if isinstance(e, TimeoutError):
        return f"no answer from {endpoint} in time"
    if isinstance(e, ConnectionError):
        return f"connection to {endpoint} lost"
    if isinstance(e, OSError):
        reason = e.strerror or str(e) or type(e).__name__
        return f"cannot reach {endpoint}: {reason[:1].lower()}{reason[1:]}"
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _PublishLoopFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        ordinary = exc is not None and connection_ended(exc)
        return not (ordinary and record.getMessage().startswith("Publish iteration crashed"))


_FILTER = _PublishLoopFilter()


def quiet_asyncua() -> None:
    """Install the filter (idempotent)."""
    logger = logging.getLogger(_PUBLISH_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
