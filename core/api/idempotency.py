"""`Idempotency-Key` on API writes: a retried request gets the first answer.

Every write (POST, PUT, PATCH, DELETE) under `/api/` may carry the header. The
API's permission check (accounts.api.permissions) calls `idempotency_claim` once
the caller may write, before the view runs: the first request with a key claims
it, the view runs, and its status and body are kept as the view finalises its
answer. A later request with the same
key and the same method, path, query and body gets that answer back (with
`Idempotent-Replayed: true`) without running the view again; with anything else
it is refused with 409 `idempotency_key_reused`, and while the first is still
being answered with 409 `idempotency_key_in_use`.

Keys belong to the organisation and to the API key (or member) that sent them,
so another key of the same organisation, or another organisation, never sees
the answer; they are forgotten after 24 hours (`IDEMPOTENCY_KEY_HOURS`). Answers
that say nothing was done (5xx, 429) are not kept: the retry runs again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.utils import encoders

from core.exceptions import ApplicationError

HEADER = "Idempotency-Key"
META_KEY = "HTTP_IDEMPOTENCY_KEY"
MAX_KEY_LENGTH = 255
IDEMPOTENCY_KEY_HOURS = 24
# a claim whose request never finished (a killed worker) is given up after this
STALE_CLAIM = dt.timedelta(minutes=10)


class IdempotentReplay(Exception):
    """Raised by the check to answer with the stored response (core.api.exceptions)."""

    def __init__(self, status: int, body: str):
        super().__init__(status)
        self.status = status
        self.body = body

    def response(self) -> Response:
        data = json.loads(self.body) if self.body else None
        return Response(data, status=self.status, headers={"Idempotent-Replayed": "true"})


def _ttl() -> dt.timedelta:
    return dt.timedelta(hours=getattr(settings, "IDEMPOTENCY_KEY_HOURS", IDEMPOTENCY_KEY_HOURS))


def _principal(request) -> str:
    api_key = getattr(request, "api_key", None)
    if api_key is not None:
        return f"api_key:{api_key.pk}"
    return f"user:{getattr(request.user, 'pk', '')}"


def _canonical(value):
    """The parsed body in a form that does not depend on how it was encoded
    (key order, spacing, a multipart boundary); uploaded files by their content."""
    if hasattr(value, "lists"):  # a QueryDict (form or multipart)
        return {k: [_canonical(v) for v in vs] for k, vs in sorted(value.lists())}
    if hasattr(value, "chunks"):  # an uploaded file
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return {"file": getattr(value, "name", ""), "sha256": digest.hexdigest()}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _fingerprint(request) -> str:
    body = _canonical(request.data)
    query = sorted(request.query_params.lists())
    text = json.dumps(
        [request.method, request.path, query, body], sort_keys=True, default=str, ensure_ascii=True
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _refuse(message: str, code: str, status: int = 409) -> ApplicationError:
    return ApplicationError(message, {"fields": {HEADER: message}}, code=code, status=status)


def idempotency_claim(request, view) -> None:
    """Called by the API's permission check once the caller may write (after the
    key or session is known, before the view runs): a write with the header claims
    its key, or is answered with the first answer (`IdempotentReplay`) or a 409."""
    if request.method in permissions.SAFE_METHODS:
        return
    key = request.META.get(META_KEY)
    if key is None or getattr(request, "organization", None) is None:
        return
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise _refuse(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.", "invalid", 400
        )
    row_id = _claim(request, key)
    finalize = view.finalize_response

    def finalize_and_keep(req, response, *args, **kwargs):
        response = finalize(req, response, *args, **kwargs)
        _keep(row_id, response)
        return response

    view.finalize_response = finalize_and_keep


def _claim(request, key: str) -> int:
    from core.models import IdempotencyKey

    now = timezone.now()
    principal = _principal(request)
    fingerprint = _fingerprint(request)
    # forget expired keys of this organisation as new ones come
    IdempotencyKey.objects.filter(expires_at__lte=now).delete()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(
                key=key,
                principal=principal,
                method=request.method,
                path=request.path[:1000],
                fingerprint=fingerprint,
                created_at=now,
                expires_at=now + _ttl(),
            ).pk
    except IntegrityError:
        pass
    row = IdempotencyKey.objects.filter(principal=principal, key=key).first()
    if row is None:  # removed in between (expired, or its first request failed)
        raise _refuse(
            "This Idempotency-Key is being used by another request; retry.",
            "idempotency_key_in_use",
        )
    if row.fingerprint != fingerprint:
        raise _refuse(
            "This Idempotency-Key was used for a different request (another method, "
            "address or body). Use a new key for a new request.",
            "idempotency_key_reused",
        )
    if row.status_code is not None:
        raise IdempotentReplay(row.status_code, row.response_body)
    if now - row.created_at < STALE_CLAIM:
        raise _refuse(
            "The first request with this Idempotency-Key is still being answered; "
            "retry in a moment.",
            "idempotency_key_in_use",
        )
    # the first request never finished (a killed worker): this one takes it over
    IdempotencyKey.objects.filter(pk=row.pk).update(created_at=now)
    return row.pk


def _keep(row_id: int, response) -> None:
    """Keep the answer for retries; forget the key when nothing was done (5xx,
    429) so that a retry runs again."""
    from core.models import IdempotencyKey

    rows = IdempotencyKey.objects.filter(pk=row_id)
    data = getattr(response, "data", None)
    if response.status_code >= 500 or response.status_code == 429:
        rows.delete()
        return
    body = "" if data is None else json.dumps(data, cls=encoders.JSONEncoder)
    rows.update(status_code=response.status_code, response_body=body)
