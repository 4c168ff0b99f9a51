"""A small client for the Daraja simulator's control API (``/_sandbox/``).

Only loopback simulators are contacted: the phone page runs on the server, so letting it
fetch an arbitrary ``PESARAIL_SANDBOX_URL`` would turn it into a request forwarder.
Settings are read at call time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

__all__ = [
    "ACTIONS",
    "AnswerResult",
    "SandboxUnavailable",
    "answer",
    "enabled",
    "prompt",
    "prompts",
    "sandbox_url",
]

#: What a person can do with a prompt on the phone (the simulator's answer actions).
ACTIONS: tuple[str, ...] = ("approve", "cancel", "wrong_pin", "ignore")

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CHECKOUT_ID = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
_TIMEOUT = httpx.Timeout(connect=2.0, read=5.0, write=5.0, pool=2.0)


class SandboxUnavailable(Exception):
    """The simulator is not configured, not on loopback, or did not answer."""


def enabled() -> bool:
    """The phone page exists only when the sandbox is on, and never under the production
    settings module (whatever ``PESARAIL_SANDBOX_ENABLED`` says there)."""
    if not getattr(settings, "PESARAIL_SANDBOX_ENABLED", False):
        return False
    module = str(getattr(settings, "SETTINGS_MODULE", "") or "")
    return not module.endswith(".production")


def sandbox_url() -> str:
    """The simulator's base URL (``PESARAIL_SANDBOX_URL``), checked to be loopback."""
    raw = str(getattr(settings, "PESARAIL_SANDBOX_URL", "") or "").strip().rstrip("/")
    if not raw:
        raise SandboxUnavailable(
            "The M-Pesa simulator is not configured (PESARAIL_SANDBOX_URL is not set).")
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise SandboxUnavailable("PESARAIL_SANDBOX_URL is not a valid URL.") from None
    if parts.scheme not in {"http", "https"} or parts.hostname not in _LOOPBACK:
        raise SandboxUnavailable(
            "The sandbox phone only talks to a simulator on this machine "
            "(PESARAIL_SANDBOX_URL must be http://127.0.0.1:<port> or localhost).")
    return raw


def _headers() -> dict[str, str]:
    token = getattr(settings, "PESARAIL_SANDBOX_CONTROL_TOKEN", None)
    return {"X-Sandbox-Token": str(token)} if token else {}


def _request(method: str, path: str, **kwargs: Any) -> httpx.Response:
    base = sandbox_url()
    try:
        with httpx.Client(timeout=_TIMEOUT, trust_env=False, follow_redirects=False) as client:
            return client.request(method, f"{base}/_sandbox/{path}", headers=_headers(),
                                  **kwargs)
    except httpx.HTTPError as exc:
        raise SandboxUnavailable(
            f"The M-Pesa simulator at {base} did not answer ({type(exc).__name__}).") from None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SandboxUnavailable("The M-Pesa simulator sent an unexpected answer.")
    return body


def prompts(msisdn: str, limit: int = 20) -> list[dict[str, Any]]:
    """Prompts sent to ``msisdn`` (``2547…``), newest first."""
    response = _request("GET", "prompts", params={"msisdn": msisdn, "limit": str(limit)})
    if response.status_code != 200:
        raise SandboxUnavailable(
            f"The M-Pesa simulator refused to list prompts (HTTP {response.status_code}).")
    found = _json_object(response).get("prompts")
    if not isinstance(found, list):
        raise SandboxUnavailable("The M-Pesa simulator sent an unexpected answer.")
    return [p for p in found if isinstance(p, dict)]


def prompt(checkout_request_id: str) -> dict[str, Any] | None:
    """One prompt, or None when the simulator does not know it."""
    if not _CHECKOUT_ID.match(checkout_request_id):
        return None
    response = _request("GET", f"prompts/{checkout_request_id}")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise SandboxUnavailable(
            f"The M-Pesa simulator refused to show the prompt (HTTP {response.status_code}).")
    return _json_object(response)


@dataclass(frozen=True)
class AnswerResult:
    ok: bool
    reason: str  # "", "already_answered", "not_found"
    prompt: dict[str, Any] | None


def answer(checkout_request_id: str, action: str) -> AnswerResult:
    """Answer a prompt as the phone's owner; the simulator then sends the real callback."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of: {', '.join(ACTIONS)}")
    if not _CHECKOUT_ID.match(checkout_request_id):
        return AnswerResult(False, "not_found", None)
    response = _request("POST", f"prompts/{checkout_request_id}/answer",
                        json={"action": action})
    if response.status_code == 200:
        return AnswerResult(True, "", _json_object(response))
    if response.status_code == 404:
        return AnswerResult(False, "not_found", None)
    if response.status_code == 409:
        body = _json_object(response)
        found = body.get("prompt")
        return AnswerResult(False, "already_answered", found if isinstance(found, dict) else None)
    raise SandboxUnavailable(
        f"The M-Pesa simulator refused the answer (HTTP {response.status_code}).")
