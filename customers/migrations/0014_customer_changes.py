# The narrow table a pipeline run marks changed customers in (issue 15: rewriting a
# million customer rows to mark them cost 224 s a run).

import django.db.models.deletion
import django.db.models.manager
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("customers", "0013_search_keys"),
    ]

    operations = [
        migrations.CreateModel(
            name="CustomerChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("changed_at", models.DateTimeField()),
                (
                    "customer",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="customers.customer",
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        db_index=False,
                        editable=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.organization",
                    ),
                ),
            ],
            options={
                "abstract": False,
                "base_manager_name": "all_objects",
                "default_manager_name": "all_objects",
                "indexes": [
                    models.Index(
                        fields=["organization", "changed_at"], name="custchange_org_changed"
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("organization", "customer"), name="custchange_org_customer"
                    )
                ],
            },
            managers=[("all_objects", django.db.models.manager.Manager())],
        ),
    ]
