from django.db import migrations


def repair(apps, schema_editor):
    """Rows stored before the value checks that no page can read back (issue 8):
    see customers.services.repair."""
    from accounts.tenancy import tenant_context
    from customers.services.repair import unreadable_values_repair

    Organization = apps.get_model("accounts", "Organization")
    for org_id in Organization.objects.values_list("pk", flat=True):
        # Row-level security on PostgreSQL admits the organisation's own rows.
        with tenant_context(org_id):
            unreadable_values_repair(organization_id=org_id)


class Migration(migrations.Migration):
    dependencies = [("customers", "0003_deleted_order")]

    operations = [migrations.RunPython(repair, migrations.RunPython.noop)]
