"""Staff groups and their permissions, kept up to date after every migrate.

- Support: sees organisations and their usage and limits, jobs, the audit log and
  the platform's health; may ask an owner for support access.
- Operations: Support, plus suspend and reactivate, schedule deletion, change
  limits, re-run jobs, and emergency support access.

Customer records, orders and feedback are in neither group: they open only through
a support access grant (accounts/support.py). Groups are created or completed on
every `migrate` (idempotent); permissions someone added by hand stay.
"""

from __future__ import annotations

from django.db.models.signals import post_migrate

SUPPORT = "Support"
OPERATIONS = "Operations"

SUPPORT_PERMISSIONS = [
    "accounts.view_organization",
    "accounts.view_organizationlimits",
    "accounts.view_apiusage",
    "accounts.view_auditlogentry",
    "accounts.view_membership",
    "accounts.view_platform_health",
    "accounts.request_support_access",
    "accounts.view_supportgrant",
    "core.view_job",
]
OPERATIONS_PERMISSIONS = [
    *SUPPORT_PERMISSIONS,
    "accounts.suspend_organization",
    "accounts.schedule_deletion",
    "accounts.add_organizationlimits",
    "accounts.change_organizationlimits",
    "accounts.emergency_support_access",
    "core.change_job",
]
GROUPS = {SUPPORT: SUPPORT_PERMISSIONS, OPERATIONS: OPERATIONS_PERMISSIONS}


def staff_groups_sync(*, using: str = "default") -> None:
    """Create the staff groups and give them their permissions (adds, never removes)."""
    from django.contrib.auth.models import Group, Permission

    for name, perms in GROUPS.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".", 1)
            found = (
                Permission.objects.using(using)
                .filter(content_type__app_label=app_label, codename=codename)
                .first()
            )
            if found is not None:  # a model not migrated yet; the next migrate adds it
                wanted.append(found)
        group.permissions.add(*wanted)


def _after_migrate(sender, using="default", **kwargs) -> None:
    if getattr(sender, "name", "") != "backoffice":
        return
    staff_groups_sync(using=using)


post_migrate.connect(_after_migrate, dispatch_uid="backoffice.staff_groups")
