"""What etcd's failures mean to kos: the errors of :mod:`.etcd`, and which of them
trying again can cure (etcd busy or away) and which it cannot (access denied).
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl

from kos_core._world.url import WorldURL
from kos_core.errors import WorldUnavailable


class LeaseLost(WorldUnavailable):
    """etcd answers, but the lease a call named no longer exists."""


class EtcdRefused(WorldUnavailable):
    """etcd answered, with an error: it is reachable, but did not do what was asked
    (overloaded: "request timed out"; or a malformed request).
    """


class EtcdDenied(WorldUnavailable):
    """etcd, or the TLS to it, will not let this client in: a certificate either side
    does not accept, a wrong user or password, a permission the user lacks. Trying
    again does not help: a kernel that meets this when it joins stops.
    """


#: what etcd (3.4, 3.5) answers to a token it no longer knows (expired, or from
#: before a restart): the client authenticates again
INVALID_TOKEN = "etcdserver: invalid auth token"
#: gRPC codes of etcd's replies that deny access: PERMISSION_DENIED, UNAUTHENTICATED
_DENIED_CODES = (7, 16)
#: etcd's messages that deny access under another code (INVALID_ARGUMENT)
_DENIED_TEXTS = ("authentication failed", "user name is empty", "permission denied")


def detail(exc: BaseException | None) -> str:
    """The message of a failure: etcd's own (its reply's ``message``), else the first line."""
    if exc is None:
        return "no endpoint"
    text = str(getattr(exc, "detail_text", "") or exc)
    with contextlib.suppress(ValueError, AttributeError):
        text = str(json.loads(text).get("message") or text)
    return text.splitlines()[0][:200] if text else type(exc).__name__


def refusal(url: WorldURL, path: str, detail: str) -> WorldUnavailable:
    """What etcd's error reply to ``path`` means: :class:`EtcdDenied` for a denial of
    access, else :class:`EtcdRefused`.
    """
    if any(text in detail for text in _DENIED_TEXTS) or INVALID_TOKEN in detail:
        if "user name is empty" in detail:
            detail += f" (authentication is on: join as etcd://USER@{_endpoints(url)})"
        elif "permission denied" in detail:
            who = f"user {url.user!r}" if url.user else "this client"
            detail += f" ({who} may not use the prefix {url.prefix})"
        elif url.user:
            detail += f" (user {url.user!r}; the password is $KOS_WORLD_PASSWORD)"
        return EtcdDenied(f"etcd at {url} refused {path}: {detail}")
    return EtcdRefused(f"etcd refused {path}: {detail}")


def unreachable(url: WorldURL, last: BaseException | None) -> WorldUnavailable:
    """No endpoint answered: :class:`EtcdDenied` if TLS failed, else unavailable."""
    problem = _tls_problem(last, url)
    if problem is not None:
        return EtcdDenied(f"TLS to etcd at {url} failed: {problem}")
    return WorldUnavailable(f"etcd at {url} does not answer ({detail(last)})")


def _tls_problem(exc: BaseException | None, url: WorldURL) -> str | None:
    """What went wrong in a TLS handshake that ``exc`` (or what caused it) reports."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError):
            where = f"the authority in ca={url.ca}" if url.ca else "a public authority"
            return f"etcd's certificate is not accepted: {item.verify_message} (kos trusts {where})"
        if isinstance(item, ssl.SSLError):
            reason = re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(item.reason or item))
            if isinstance(item, ssl.SSLEOFError) or "ALERT" in str(reason).upper():
                wanted = (
                    "" if url.cert else "; give cert= and key= if etcd wants a client certificate"
                )
                return f"etcd ended the handshake ({reason}): it refused this client{wanted}"
            return str(reason)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None)]
        todo += [arg for arg in item.args if isinstance(arg, BaseException)]
    return None


def _endpoints(url: WorldURL) -> str:
    return ",".join(f"{h}:{p}" for h, p in url.endpoints)
