"""The admin index's "Platform" panel (templates/admin/index.html)."""

from __future__ import annotations

from django import template
from django.template.loader import select_template
from django.urls import reverse

register = template.Library()


@register.inclusion_tag("admin/backoffice/platform_panel.html", takes_context=True)
def platform_panel(context):
    """Links to the organisations overview, failing jobs (with their count) and the
    health page, each for staff with the permission to see it."""
    from backoffice.views import failing_jobs_count

    request = context.get("request")
    user = getattr(request, "user", None)
    links = []
    if user is None:
        return {"links": links}
    if user.has_perm("accounts.view_organization"):
        links.append(
            {
                "label": "Organisations overview",
                "url": reverse("admin:accounts_organization_changelist"),
                "note": "usage, limits, suspension and deletion",
            }
        )
    if user.has_perm("accounts.view_platform_health"):
        count = failing_jobs_count()
        links.append(
            {
                "label": f"Failing jobs ({count})",
                "url": reverse("admin:core_job_failing"),
                "note": "failed in the last 7 days or stuck, across organisations",
            }
        )
        links.append(
            {
                "label": "Platform health",
                "url": reverse("admin:core_job_health"),
                "note": "workers, broker queues, database, jobs",
            }
        )
    return {"links": links}


@register.simple_tag(takes_context=True)
def support_panel(context):
    """The support access panel of the index, when support access provides one
    (templates/admin/backoffice/support_index.html); nothing otherwise."""
    chosen = select_template(
        ["admin/backoffice/support_index.html", "admin/backoffice/_nothing.html"]
    )
    return chosen.render(context.flatten(), context.get("request"))
