"""Audience pages."""

from __future__ import annotations

from django.shortcuts import render

from accounts.decorators import org_required


@org_required
def audience_list(request):
    from .selectors import audiences_list

    return render(request, "audiences/list.html", {"audiences": audiences_list()})
