"""The embedded default email backend (``make run``): each email's subject and body on stdout, which
ends up in the logs, so never its recipients or headers, and with link tokens masked
(``link_tokens_masked``: a token is the key to a patient's link). Deployments set an SMTP or provider
backend (README, "Environment")."""

from __future__ import annotations

from email.message import Message

from django.core.mail.backends.console import EmailBackend

from .logging import link_tokens_masked


class ConsoleEmailBackend(EmailBackend):
    def write_message(self, message: Message | object) -> None:
        subject = getattr(message, "subject", "")
        body = getattr(message, "body", "")
        self.stream.write(f"[email] {link_tokens_masked(str(subject))}\n{link_tokens_masked(str(body))}\n")
