"""What a redis-py exception says about the command that raised it.

Three answers, decided from exception types and their cause chain (never
from message text):

* **refused**: the server (or the client, before sending) said no without
  running it, so the store retries it within its refusal window: TRYAGAIN
  (a multi-key call meeting a split slot), ASK/MOVED (the slot moved), the
  cluster client's ``ClusterError("TTL exhausted")`` (redis-py raises it only
  after every one of its attempts was redirected), CLUSTERDOWN and a slot
  with no owner (a failover in progress), LOADING, NOSCRIPT right after a
  reload, READONLY from a demoted primary (redis-py's Sentinel client
  re-raises it as a ``ConnectionError`` whose context is the
  ``ReadOnlyError``), and ``NotSent`` (the store could not connect).
* **nothing sent**: refused by the client itself for lack of a connection
  (``MaxConnectionsError``) or by the server at connect
  (``AuthenticationError``); not retried.
* anything else that reached the network (a connection lost after the send,
  a timeout, and client bugs such as redis-py's writer torn down under a
  running command, redis-py #3546/#4287) leaves the **outcome unknown**.
"""

from __future__ import annotations

from redis.exceptions import (
    AskError,
    AuthenticationError,
    BusyLoadingError,
    ClusterError,
    MaxConnectionsError,
    NoScriptError,
    ReadOnlyError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

# ClusterError covers ClusterDownError (CLUSTERDOWN) and MasterDownError;
# AskError covers MovedError.
_REFUSED = (TryAgainError, AskError, ClusterError, SlotNotCoveredError, BusyLoadingError, NoScriptError, ReadOnlyError)


class NotSent(Exception):
    """The store could not reach the node that owns a runtime's slot: the
    command was never sent (raised by ``cluster_route``)."""


def refusal(exc: BaseException) -> str | None:
    """What refused ``exc``'s command without running it (an exception type
    name), or None if it was not a refusal."""
    if isinstance(exc, (*_REFUSED, NotSent)):
        return type(exc).__name__
    # Sentinel's demoted primary: a ConnectionError raised while handling READONLY.
    if isinstance(exc, RedisConnectionError) and isinstance(exc.__context__, ReadOnlyError):
        return ReadOnlyError.__name__
    return None


def refused(exc: BaseException) -> bool:
    return refusal(exc) is not None


def nothing_sent(exc: BaseException) -> bool:
    """Was ``exc`` raised before the command could leave the client?"""
    return isinstance(exc, (MaxConnectionsError, AuthenticationError))
