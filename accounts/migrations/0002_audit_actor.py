import django.db.models.deletion
from django.db import migrations, models


def actor_kinds(apps, schema_editor):
    """Entries written before the actor kind: a member's entries are "user", an API
    key's are "api_key" (labelled `api-key:<prefix>` or `API key …`); the rest stay
    blank (the label says who)."""
    from accounts.tenancy import tenant_context

    Organization = apps.get_model("accounts", "Organization")
    AuditLogEntry = apps.get_model("accounts", "AuditLogEntry")
    for org_id in Organization.objects.values_list("pk", flat=True):
        # Row-level security on PostgreSQL admits the organisation's own rows.
        with tenant_context(org_id):
            entries = AuditLogEntry.objects.filter(organization_id=org_id, actor_kind="")
            entries.filter(actor__isnull=False).update(actor_kind="user")
            entries.filter(actor__isnull=True, actor_label__startswith="api-key:").update(
                actor_kind="api_key"
            )
            entries.filter(actor__isnull=True, actor_label__startswith="API key ").update(
                actor_kind="api_key"
            )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditlogentry",
            name="actor_kind",
            field=models.CharField(
                blank=True,
                choices=[("user", "Member"), ("api_key", "API key"), ("system", "System")],
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="auditlogentry",
            name="api_key",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="accounts.apikey",
            ),
        ),
        migrations.AlterField(
            model_name="auditlogentry",
            name="action",
            field=models.CharField(
                choices=[
                    ("sign_in", "Signed in"),
                    ("sign_in_failed", "Failed sign-in"),
                    ("sign_out", "Signed out"),
                    ("sign_up", "Signed up"),
                    ("password_changed", "Password changed"),
                    ("password_reset", "Password reset"),
                    ("two_factor_enabled", "Two-factor enabled"),
                    ("two_factor_disabled", "Two-factor disabled"),
                    ("member_invited", "Member invited"),
                    ("member_joined", "Member joined"),
                    ("member_removed", "Member removed"),
                    ("role_changed", "Role changed"),
                    ("key_created", "API key created"),
                    ("key_revoked", "API key revoked"),
                    ("settings_changed", "Settings changed"),
                    ("data_exported", "Data exported"),
                    ("data_erased", "Data erased"),
                    ("erasure_cleaned", "Erased data removed from stored files"),
                    ("org_deleted", "Organisation deleted"),
                ],
                max_length=32,
            ),
        ),
        migrations.RunPython(actor_kinds, migrations.RunPython.noop),
    ]
