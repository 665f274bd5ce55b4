"""Prior-authorization documents attached before 0013 name no HCPCS code, so they clear no hold.

A prior authorization is per HCPCS code (and its UTN): since 0013 a ``PRIOR_AUTH`` attachment clears
only the items whose codes it names (``Attachment.hcpcs_codes``), and the documents attached earlier
were left with none. This names the code where it is unambiguous: the attachment's order has exactly
one distinct HCPCS code among its items (the code of each item's product, as the compliance checks
read it; items without a code, such as medications, are not HCPCS-coded and do not count).

Left empty, on purpose: documents on orders with two or more distinct codes (which item a document
is for cannot be told from the order: a person must say, by attaching it again with its code) and
on orders with no coded item. Documents that already name codes are not changed. Nothing is
re-checked here: the next compliance check of an order (a re-check, a new document) takes the code
into account. Only codes and ids are read: no PHI is decrypted.
"""

from django.db import migrations

PRIOR_AUTH = "PRIOR_AUTH"


def name_the_code_of_prior_authorizations_on_single_code_orders(apps, schema_editor):
    Attachment = apps.get_model("orders", "Attachment")
    OrderItem = apps.get_model("orders", "OrderItem")
    unnamed: dict[object, list[object]] = {}  # order id → its attachments that name no code
    for pk, order_id, codes in Attachment.objects.filter(artifact_type=PRIOR_AUTH).values_list(
        "pk", "order_id", "hcpcs_codes"
    ):
        if not codes:
            unnamed.setdefault(order_id, []).append(pk)
    codes_of_order: dict[object, set[str]] = {}
    for order_id, code in OrderItem.objects.filter(order_id__in=list(unnamed)).values_list(
        "order_id", "product__hcpcs_code"
    ):
        if code:
            codes_of_order.setdefault(order_id, set()).add(code)
    by_code: dict[str, list[object]] = {}
    for order_id, attachment_ids in unnamed.items():
        codes = codes_of_order.get(order_id, set())
        if len(codes) == 1:
            by_code.setdefault(next(iter(codes)), []).extend(attachment_ids)
    for code, attachment_ids in by_code.items():
        Attachment.objects.filter(pk__in=attachment_ids).update(hcpcs_codes=[code])


class Migration(migrations.Migration):
    dependencies = [("orders", "0013_prior_authorization_documents_name_their_hcpcs_codes")]

    operations = [
        migrations.RunPython(name_the_code_of_prior_authorizations_on_single_code_orders, migrations.RunPython.noop)
    ]
