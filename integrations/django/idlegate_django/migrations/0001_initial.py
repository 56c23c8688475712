from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="WebhookDelivery",
            fields=[
                ("id", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("type", models.CharField(max_length=64)),
                ("data", models.JSONField()),
                ("received_at", models.DateTimeField(auto_now_add=True, db_index=True)),
            ],
            options={"db_table": "idlegate_webhook_delivery"},
        ),
        migrations.CreateModel(
            name="Refusal",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("at", models.DateTimeField()),
                ("status", models.PositiveSmallIntegerField()),
                ("reason", models.CharField(max_length=255)),
                ("count", models.PositiveIntegerField(default=0)),
            ],
            options={"db_table": "idlegate_refusal"},
        ),
    ]
