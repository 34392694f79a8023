"""Every API error has the shape `{"error": {"code", "message", "fields"}}`."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.tenancy import TenantNotSet
from core.exceptions import ApplicationError

from .idempotency import IdempotentReplay

log = logging.getLogger("segmenta.api")


def _flatten(detail):
    if isinstance(detail, list):
        return " ".join(str(d) for d in detail)
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, IdempotentReplay):
        return exc.response()
    if isinstance(exc, ApplicationError):
        return Response(
            {
                "error": {
                    "code": exc.code,
                    "message": exc.message,
                    "fields": exc.extra.get("fields", {}),
                }
            },
            status=exc.status,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, TenantNotSet):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        log.exception("api.unhandled", exc_info=exc)
        return Response(
            {
                "error": {
                    "code": "server_error",
                    "message": "Something went wrong on our side.",
                    "fields": {},
                }
            },
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    data = response.data
    fields = {}
    if isinstance(exc, exceptions.ValidationError) and isinstance(data, dict):
        fields = {k: _flatten(v) for k, v in data.items() if k != "non_field_errors"}
        message = _flatten(
            data.get("non_field_errors", "")
        ) or "Some fields are not valid: " + ", ".join(fields)
    elif isinstance(exc, exceptions.ValidationError):
        message = _flatten(data)
    else:
        message = _flatten(data.get("detail", data)) if isinstance(data, dict) else _flatten(data)
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.APIException) and hasattr(exc, "get_codes"):
        codes = exc.get_codes()
        if isinstance(codes, str):
            code = codes
    response.data = {"error": {"code": code, "message": message, "fields": fields}}
    return response
