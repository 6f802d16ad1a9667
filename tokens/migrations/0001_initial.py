"""API tokens, formerly a model of the ``api`` app; the table keeps its name ``api_apitoken``.

A database that ran the old app's migration already has the table: the model is only added to the
migration state there, and its content type (with the admin permissions hanging off it) moves to
this app. A new database gets the table created as usual.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TABLE = "api_apitoken"


class CreateModelUnlessTableExists(migrations.CreateModel):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if TABLE in schema_editor.connection.introspection.table_names():
            return
        super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        # Going back leaves the table (and its tokens) in place for the old app to find.
        pass


def content_type_adopt(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="tokens", model="apitoken").exists():
        ContentType.objects.filter(app_label="api", model="apitoken").update(app_label="tokens")


def content_type_return(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="tokens", model="apitoken").update(app_label="api")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        CreateModelUnlessTableExists(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text="Which system uses it, e.g. 'RIS integration'.", max_length=120)),
                ('key_hash', models.CharField(editable=False, max_length=64, unique=True)),
                ('prefix', models.CharField(editable=False, help_text='First characters of the key, to recognise it.', max_length=8)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('expires_at', models.DateTimeField(blank=True, help_text='Empty: valid until revoked.', null=True)),
                ('revoked_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('created_by', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('user', models.ForeignKey(help_text="The client acts with this user's roles.", on_delete=django.db.models.deletion.PROTECT, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'API token',
                'ordering': ['-created_at'],
                'db_table': TABLE,
            },
        ),
        migrations.RunPython(content_type_adopt, content_type_return),
    ]
