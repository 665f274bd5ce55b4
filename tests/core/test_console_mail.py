"""The embedded email backend (``make run``) writes subject and body only: no recipient, link tokens
masked, unsubscribe links included."""

from __future__ import annotations

import io

from django.core.mail import EmailMessage

from core.logging import link_tokens_masked
from core.mail import ConsoleEmailBackend


def test_the_console_email_shows_no_recipient_and_masks_link_tokens() -> None:
    stream = io.StringIO()
    backend = ConsoleEmailBackend(stream=stream)
    message = EmailMessage(
        subject="Your order ABCD-EFGH",
        body="Pay at http://localhost:8000/pay/secret-token-1234\nStop: http://localhost:8000/messages/unsubscribe/abc:sig9876\n",
        to=["edith.calloway@example.org"],
        headers={"List-Unsubscribe": "<http://localhost:8000/messages/unsubscribe/abc:sig9876>"},
    )

    assert backend.send_messages([message]) == 1

    assert stream.getvalue() == (
        "[email] Your order ABCD-EFGH\n"
        "Pay at http://localhost:8000/pay/****1234\n"
        "Stop: http://localhost:8000/messages/unsubscribe/****9876\n\n"
    )


def test_unsubscribe_tokens_are_masked_like_pay_links() -> None:
    assert link_tokens_masked("GET /messages/unsubscribe/a1b2:c3d4e5 HTTP/1.1") == (
        "GET /messages/unsubscribe/****d4e5 HTTP/1.1"
    )
