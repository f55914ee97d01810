from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0004_source_security"),
    ]

    operations = [
        migrations.AddField(
            model_name="destinationsettings",
            name="body_template",
            field=models.JSONField(blank=True, default=None, null=True),
        ),
    ]
