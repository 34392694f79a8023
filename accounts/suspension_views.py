"""The page members of a suspended organisation see."""

from __future__ import annotations

from django.http import HttpResponse


def suspended(request):
    return HttpResponse("to do")
