"""Research site pages (helper H4 writes them)."""

from __future__ import annotations

from django.http import HttpResponse

from accounts.decorators import org_required


@org_required
def overview(request):
    return HttpResponse("Research")
