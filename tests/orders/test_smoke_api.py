from typing import Any


def test_doctor_creates_and_reads_an_order(north: Any, api: Any) -> None:
    client = api(north.doctor)
    response = client.post(
        "/api/v1/orders",
        {
            "patient_id": str(north.patient.pk),
            "provider_id": str(north.provider.pk),
            "items": [{"sku": north.product.sku, "quantity": 2}],
            "payer_type": "insurance",
            "diagnosis_codes": ["G4733"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending_verification"
    assert body["stage"] == "Pending"
    assert body["diagnosis_codes"] == ["G47.33"]
    assert body["items"] == [{"sku": north.product.sku, "quantity": 2, "unit_price_cents": 12500, "line_total_cents": 25000}]
    assert client.get(f"/api/v1/orders/{body['id']}").json()["id"] == body["id"]
