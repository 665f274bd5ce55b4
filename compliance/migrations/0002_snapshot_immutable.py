"""On PostgreSQL, refuse UPDATE and DELETE of compliance snapshots at the database itself."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION compliance_snapshot_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'compliance snapshots are immutable';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER compliance_snapshot_no_update_delete
    BEFORE UPDATE OR DELETE ON compliance_compliancesnapshot
    FOR EACH ROW EXECUTE FUNCTION compliance_snapshot_immutable();
"""

DROP = """
DROP TRIGGER IF EXISTS compliance_snapshot_no_update_delete ON compliance_compliancesnapshot;
DROP FUNCTION IF EXISTS compliance_snapshot_immutable();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_compliance_engine")]
    operations = [migrations.RunPython(forwards, backwards)]
