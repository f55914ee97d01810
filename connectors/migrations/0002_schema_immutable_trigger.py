"""On PostgreSQL, a trigger that refuses UPDATE and DELETE of schema fields.

The model layer already refuses these; the trigger also stops raw SQL, bulk paths and any
future code that forgets. Deleting a connector is the one exception: its deletion marks the
connector in the transaction-local setting ``osmos.deleting_connectors`` (see
``connectors.models.allow_schema_delete``) and the trigger lets that connector's rows go.
Other databases get nothing: the operation checks the vendor.
"""

from django.db import migrations

FORWARDS = """
CREATE OR REPLACE FUNCTION connectors_schemafield_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.connector_id::text = ANY (
        string_to_array(current_setting('osmos.deleting_connectors', true), ',')
    ) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'The schema of a saved connector cannot be changed; duplicate the connector.'
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER connectors_schemafield_immutable
    BEFORE UPDATE OR DELETE ON connectors_schemafield
    FOR EACH ROW EXECUTE FUNCTION connectors_schemafield_immutable();
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS connectors_schemafield_immutable ON connectors_schemafield;
DROP FUNCTION IF EXISTS connectors_schemafield_immutable();
"""


class PostgreSQLOnly(migrations.RunSQL):
    """RunSQL that runs only on PostgreSQL (the SQL is PL/pgSQL)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [("connectors", "0001_initial")]

    operations = [PostgreSQLOnly(FORWARDS, BACKWARDS)]
