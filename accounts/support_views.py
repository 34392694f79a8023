"""Settings → Support access: the owner's side of support access grants."""

from __future__ import annotations

from django.http import HttpResponse

from .decorators import org_required
from .models import Role


@org_required(role=Role.OWNER)
def support(request):
    return HttpResponse("to do")


@org_required(role=Role.OWNER)
def support_decide(request, pk: int, decision: str):
    return HttpResponse("to do")
