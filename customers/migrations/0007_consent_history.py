import django.utils.timezone
from django.db import migrations, models
from django.db.models import F


def describe_old_changes(apps, schema_editor):
    """Changes recorded before: how they came and who made them, read from the
    source text they kept ("edited by <email>", "API key <prefix>", "import #…")."""
    from accounts.tenancy import tenant_context

    Organization = apps.get_model("accounts", "Organization")
    ConsentChange = apps.get_model("customers", "ConsentChange")
    for org_id in Organization.objects.values_list("pk", flat=True):
        # Row-level security on PostgreSQL admits the organisation's own rows.
        with tenant_context(org_id):
            changes = ConsentChange.objects.filter(organization_id=org_id, via="")
            changes.update(recorded_at=F("changed_at"))
            for change in changes.filter(source__startswith="edited by "):
                change.via, change.actor_kind = "site", "user"
                change.actor_label = change.source.removeprefix("edited by ")[:254]
                change.save(update_fields=["via", "actor_kind", "actor_label"])
            changes.filter(source__startswith="API key ").update(
                via="api", actor_kind="api_key", actor_label=F("source")
            )
            changes.filter(source__startswith="import").update(
                via="import", actor_kind="system", actor_label=F("source")
            )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0006_order_status_line_discount"),
    ]

    operations = [
        migrations.AddField(
            model_name="consentchange",
            name="actor_kind",
            field=models.CharField(blank=True, max_length=8),
        ),
        migrations.AddField(
            model_name="consentchange",
            name="actor_label",
            field=models.CharField(blank=True, max_length=254),
        ),
        migrations.AddField(
            model_name="consentchange",
            name="recorded_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="consentchange",
            name="via",
            field=models.CharField(
                blank=True,
                choices=[
                    ("import", "Import"),
                    ("api", "API"),
                    ("site", "Edited on the site"),
                    ("unsubscribe", "Unsubscribe link"),
                    ("preference", "Preference page"),
                    ("system", "Segmenta"),
                ],
                max_length=12,
            ),
        ),
        migrations.RunPython(describe_old_changes, migrations.RunPython.noop),
    ]
