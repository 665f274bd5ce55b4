"""The printable signed written order: a PDF of what the practitioner signed, with the signature.

A standard written order names the beneficiary, the order date, each item (description and
quantity), the treating practitioner (name and NPI) and carries the practitioner's signature
(Medicare DMEPOS standard written order elements, 42 CFR 410.38(d) as amended by CMS-1713-F,
84 FR 60648, effective 2020-01-01). The PDF adds who signed, when, and the SHA-256 hash of the
order summary the signature covers (``Order.signature_hash``), so a printed copy can be matched
to the electronic record.

Rendering only: the caller has already checked that the reader may see the order's PHI and
records the access.
"""

from __future__ import annotations

import io
import unicodedata
from typing import Any

from django.utils import timezone
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from .models import SIGNATURE_ARTIFACT, Order

_PAGE_WIDTH_MM = 180  # A4 (210 mm) less the 15 mm margins


def _latin1(text: Any) -> str:
    """The text in the PDF core fonts' Latin-1 alphabet: accents kept where Latin-1 has them, any
    other character decomposed to its base letter or replaced by "?"."""
    value = str(text or "")
    try:
        value.encode("latin-1")
        return value
    except UnicodeEncodeError:
        decomposed = unicodedata.normalize("NFKD", value)
        return "".join(ch if ord(ch) < 256 else "?" for ch in decomposed if not unicodedata.combining(ch))


def written_order_pdf(*, order: Order) -> bytes:
    """The signed written order of ``order`` as PDF bytes.

    Needs a signed order (``signed_at`` set); the drawn signature image is included when the order
    has its SIGNATURE attachment. Reads the order's patient, provider, items and signer.
    """
    if order.signed_at is None:
        raise ValueError("Only a signed order has a signed written order.")
    signature = order.attachments.filter(artifact_type=SIGNATURE_ARTIFACT).order_by("-created_at").first()
    signer = order.signed_by
    patient = order.patient
    provider = order.provider

    pdf = FPDF(format="A4")
    pdf.set_title(f"Written order {order.reference}")
    pdf.set_creator("Medical ordering system")
    pdf.set_margins(15, 15, 15)
    pdf.add_page()

    def heading(text: str, size: int = 12) -> None:
        pdf.set_font("Helvetica", style="B", size=size)
        pdf.cell(_PAGE_WIDTH_MM, 8, _latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def line(label: str, value: Any) -> None:
        pdf.set_font("Helvetica", style="B", size=10)
        pdf.cell(48, 6, _latin1(label))
        pdf.set_font("Helvetica", size=10)
        pdf.multi_cell(_PAGE_WIDTH_MM - 48, 6, _latin1(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    heading("Standard written order", size=16)
    line("Order", order.reference)
    line("Order date", order.order_date.isoformat())
    pdf.ln(2)

    heading("Beneficiary")
    line("Name", f"{patient.first_name} {patient.last_name}")
    line("Date of birth", patient.date_of_birth.isoformat() if patient.date_of_birth else "-")
    if patient.mbi:
        line("Medicare number (MBI)", patient.mbi)
    pdf.ln(2)

    heading("Items")
    for item in order.items.select_related("product").order_by("sku"):
        description = f"{item.product.name} ({item.sku}"
        description += f", HCPCS {item.product.hcpcs_code})" if item.product.hcpcs_code else ")"
        line(f"Quantity {item.quantity}", description)
        if item.dosage_text:
            line("Directions", item.dosage_text)
        if item.refills:
            line("Refills", item.refills)
    if order.diagnosis_codes:
        line("Diagnoses (ICD-10-CM)", ", ".join(order.diagnosis_codes))
    pdf.ln(2)

    heading("Treating practitioner")
    line("Name", provider.name)
    line("NPI", provider.npi)
    pdf.ln(2)

    heading("Signature")
    if signature is not None:
        with signature.file.open("rb") as image:
            pdf.image(io.BytesIO(image.read()), w=70)
    signed_at = timezone.localtime(order.signed_at)
    line("Signed by", signer.display_name if signer is not None else provider.name)
    line("Signed at", signed_at.strftime("%Y-%m-%d %H:%M %Z"))
    line("Order summary hash", "SHA-256")
    pdf.set_font("Courier", size=9)
    pdf.cell(_PAGE_WIDTH_MM, 6, order.signature_hash, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=8)
    pdf.multi_cell(
        _PAGE_WIDTH_MM,
        4,
        "The hash covers the order, beneficiary, practitioner, order date, items and quantities and the"
        " diagnoses as signed; the electronic record holds the same value.",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    return bytes(pdf.output())
