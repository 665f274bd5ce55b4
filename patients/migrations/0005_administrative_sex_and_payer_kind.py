import core.fields
import patients.models
from django.db import migrations, models


def insurance_was_medicare_ffs(apps, schema_editor):
    """Until payer kinds existed every insurance coverage was checked as Medicare fee-for-service;
    keep that meaning for the rows already on file (staff correct the others in the admin)."""
    Coverage = apps.get_model("patients", "Coverage")
    Coverage.objects.filter(payer_type="insurance", payer_kind="").update(payer_kind="medicare_ffs")


class Migration(migrations.Migration):

    dependencies = [
        ('patients', '0004_backfill_name_prefix_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='coverage',
            name='payer_kind',
            field=models.CharField(blank=True, choices=[('medicare_ffs', 'Medicare fee-for-service (Original Medicare)'), ('medicare_advantage', 'Medicare Advantage'), ('medicaid', 'Medicaid'), ('va', 'Veterans Affairs'), ('ihs', 'Indian Health Service'), ('commercial', 'Commercial')], help_text='For insurance: which kind of payer. Empty for cash pay.', max_length=20),
        ),
        migrations.AddField(
            model_name='historicalcoverage',
            name='payer_kind',
            field=models.CharField(blank=True, choices=[('medicare_ffs', 'Medicare fee-for-service (Original Medicare)'), ('medicare_advantage', 'Medicare Advantage'), ('medicaid', 'Medicaid'), ('va', 'Veterans Affairs'), ('ihs', 'Indian Health Service'), ('commercial', 'Commercial')], help_text='For insurance: which kind of payer. Empty for cash pay.', max_length=20),
        ),
        migrations.AddField(
            model_name='historicalpatient',
            name='sex',
            field=core.fields.EncryptedCharField(blank=True, help_text='female, male, other or unknown (FHIR AdministrativeGender).', max_length=10, null=True, validators=[patients.models.validate_administrative_sex], verbose_name='administrative sex'),
        ),
        migrations.AddField(
            model_name='patient',
            name='sex',
            field=core.fields.EncryptedCharField(blank=True, help_text='female, male, other or unknown (FHIR AdministrativeGender).', max_length=10, null=True, validators=[patients.models.validate_administrative_sex], verbose_name='administrative sex'),
        ),
        migrations.RunPython(insurance_was_medicare_ffs, migrations.RunPython.noop),
    ]
