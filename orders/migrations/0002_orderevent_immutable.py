"""On PostgreSQL, refuse UPDATE and DELETE of order timeline rows at the database itself."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION orders_orderevent_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'order events are immutable';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER orders_orderevent_no_update_delete
    BEFORE UPDATE OR DELETE ON orders_orderevent
    FOR EACH ROW EXECUTE FUNCTION orders_orderevent_immutable();
"""

DROP = """
DROP TRIGGER IF EXISTS orders_orderevent_no_update_delete ON orders_orderevent;
DROP FUNCTION IF EXISTS orders_orderevent_immutable();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
