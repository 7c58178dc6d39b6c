"""Token authentication, declared per route.

Every view states who may call it with one of the decorators :func:`public`,
:func:`read` or :func:`write`. With a write token configured, ``read`` views need
the read token or the write token, ``write`` views need the write token, and
``public`` views need nothing. A view that declares nothing is treated as
``write`` (and ``tests/server/test_auth.py`` fails until it declares a policy).
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Literal, TypeVar

from flask import current_app, request

from ._config import ServerConfig
from ._errors import ApiError

Policy = Literal["public", "read", "write"]
POLICIES: tuple[Policy, ...] = ("public", "read", "write")
ATTRIBUTE = "labnotebook_policy"

F = TypeVar("F", bound=Callable[..., object])


def _declare(policy: Policy) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        setattr(view, ATTRIBUTE, policy)
        return view

    return decorate


#: Anyone may call the view (health, the dashboard's files).
public = _declare("public")
#: The read token or the write token may call the view.
read = _declare("read")
#: Only the write token may call the view.
write = _declare("write")


def policy_of(view: Callable[..., object] | None) -> Policy | None:
    """The policy a view declared, or ``None``."""
    found = getattr(view, ATTRIBUTE, None)
    return found if found in POLICIES else None


def check_request() -> None:
    """``before_request`` hook: refuse a request its token does not allow."""
    config: ServerConfig = current_app.extensions["labnotebook"].config
    if not config.auth_enabled or request.method == "OPTIONS":
        return

    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return  # routing failed: the 404 or 405 handler answers
    policy = policy_of(view) or "write"
    if policy == "public":
        return

    given = _bearer_token()
    if given is None:
        raise ApiError(
            401,
            "unauthorized",
            "this server needs a token; send the header 'Authorization: Bearer "
            "<token>' (LABNOTEBOOK_TOKEN for the Python client)",
            headers={"WWW-Authenticate": 'Bearer realm="labnotebook"'},
        )
    if _matches(given, config.token):
        return
    if config.read_token and _matches(given, config.read_token):
        if policy == "read":
            return
        raise ApiError(
            403,
            "forbidden",
            f"the read-only token cannot {request.method} {request.path}; use the "
            "write token",
        )
    raise ApiError(
        401,
        "invalid_token",
        "the token is not valid for this server; check LABNOTEBOOK_TOKEN or the "
        "token the server was started with",
        headers={
            "WWW-Authenticate": 'Bearer realm="labnotebook", error="invalid_token"'
        },
    )


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
