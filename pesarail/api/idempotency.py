"""``Idempotency-Key`` for every money-moving call (design rule 3).

The first request with a key claims it with an INSERT guarded by a unique constraint;
a retry with the same key and the same body gets the stored response back (header
``Idempotent-Replayed: true``); the same key with another body, or while the first is
still running, is a 409. A request that ends in a server error releases its key so the
client may retry. Domain objects keep their own unique constraints as the last line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from pesarail.api.auth import Principal
from pesarail.api.errors import error_body, exception_handler
from pesarail.api.models import IdempotencyRecord
from pesarail.common.errors import ApplicationError, ValidationFailed

HEADER = "Idempotency-Key"
_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")
STALE_AFTER = timedelta(minutes=10)


def _scope(principal: Principal) -> str:
    return principal.customer.pk if principal.customer else principal.merchant.pk


def _fingerprint(request: Request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    except Exception:
        body = repr(request.data)
    raw = f"{request.method}\n{request.path}\n{body}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _error(request: Request, status: int, code: str, message: str) -> Response:
    return Response(
        error_body(status, message, code=code, request_id=getattr(request, "request_id", None),
                   fields={HEADER: [message]} if status == 400 else None),
        status=status,
    )


def run_idempotent(request: Request, principal: Principal,
                   handler: Callable[[], Response]) -> Response:
    key = request.headers.get(HEADER, "")
    if not key:
        return _error(request, 400, "idempotency_key_required",
                      f"The {HEADER} header is required for this operation.")
    if not _VALID.match(key):
        return _error(request, 400, "idempotency_key_invalid",
                      f"{HEADER} must be 1-255 printable ASCII characters without spaces.")
    scope = _scope(principal)
    fingerprint = _fingerprint(request)
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                scope=scope, key=key, method=request.method or "", path=request.path[:500],
                fingerprint=fingerprint,
            )
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if existing is None:  # released between our INSERT and SELECT: ask for a retry
            return _error(request, 409, "idempotency_request_in_progress",
                          "A request with this Idempotency-Key is in progress; retry shortly.")
        if existing.fingerprint != fingerprint:
            return _error(request, 409, "idempotency_key_reused",
                          "This Idempotency-Key was used with a different request body or "
                          "endpoint; use a new key for a new operation.")
        if existing.state == IdempotencyRecord.State.DONE:
            response = Response(existing.response_body, status=existing.response_status)
            response["Idempotent-Replayed"] = "true"
            return response
        stale = existing.created_at < timezone.now() - STALE_AFTER
        return _error(
            request, 409, "idempotency_request_in_progress",
            "The first request with this Idempotency-Key did not finish; look the object up "
            "by its reference before retrying with a new key." if stale else
            "A request with this Idempotency-Key is in progress; retry shortly.",
        )

    try:
        response = handler()
    except (ValidationError, ValidationFailed):
        # Rejected before anything happened: free the key so a corrected retry can use it.
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        raise
    except (ApplicationError, APIException) as exc:
        # The operation ran and was refused (e.g. 422 insufficient funds): that outcome
        # is the response every retry with this key gets.
        handled = exception_handler(exc, {"request": request})
        if handled is None:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            raise
        response = handled
    except Exception:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        raise
    if response.status_code >= 500 or response.status_code == 400:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return response
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        state=IdempotencyRecord.State.DONE,
        response_status=response.status_code,
        response_body=json.loads(json.dumps(response.data, default=str)),
        completed_at=timezone.now(),
    )
    return response
