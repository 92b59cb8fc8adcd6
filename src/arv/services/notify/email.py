"""The e-mail channel: one message per SMTP session (STARTTLS or SSL, login) to the server in the settings.

The SMTP dialogue is driven step by step so that a failure can be told apart by when it happened:
before DATA nothing was handed over and a retry is safe; a connection lost during DATA may have
delivered the message, so it is reported as an unknown outcome and not retried on its own.
"""

from __future__ import annotations

import email.policy
import smtplib
import ssl
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr

from arv.config import Settings
from arv.services.notify.errors import ChannelUnavailable, DeliveryRefused, OutcomeUnknown
from arv.services.notify.messages import RenderedMessage, one_line
from arv.services.notify.ratelimit import Limit


class EmailChannel:
    """Sends over SMTP with `ARV_SMTP_*`; all workers together send at most `smtp_rate_per_s`."""

    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def limits(self, recipient: str) -> list[Limit]:
        return [Limit.per_second("smtp", self.settings.smtp_rate_per_s)]

    def build(self, recipient: str, message: RenderedMessage, *, delivery_id: int) -> EmailMessage:
        """The e-mail of `message` to `recipient`; raises DeliveryRefused for an address no header can
        hold (a line break in a stored `contact_email`)."""
        if one_line(recipient) != recipient:
            raise DeliveryRefused(
                f"the address {recipient!r} holds a line break or another control character: correct "
                "the company's contact_email, then resend"
            )
        sender_name, sender_address = parseaddr(self.settings.smtp_from)
        mail = EmailMessage()
        mail["From"] = formataddr((sender_name, sender_address))
        mail["To"] = recipient
        _set_subject(mail, message.subject)
        # One Message-ID per delivery: a mail system that sees it twice can tell it is the same mail.
        domain = sender_address.rpartition("@")[2] or "arv.local"
        mail["Message-ID"] = make_msgid(idstring=f"arv-delivery-{delivery_id}", domain=domain)
        mail["X-ARV-Delivery"] = str(delivery_id)
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        return mail

    def send(self, recipient: str, message: RenderedMessage, *, delivery_id: int) -> None:
        settings = self.settings
        if not settings.smtp_host:
            raise DeliveryRefused("e-mail is not configured on this server (ARV_SMTP_HOST is not set)")
        mail = self.build(recipient, message, delivery_id=delivery_id)
        sender = parseaddr(settings.smtp_from)[1]
        smtp = self._open()
        try:
            self._envelope(smtp, sender, recipient)
            try:
                # smtplib raises for a refused DATA command but returns the final answer unchecked.
                code, answer = smtp.data(mail.as_bytes(policy=email.policy.SMTP))
                if code != 250:
                    raise _answer_error(code, answer, "refused the message")
            except smtplib.SMTPDataError as exc:
                raise _answer_error(exc.smtp_code, exc.smtp_error, "refused the message") from exc
            except (OSError, smtplib.SMTPException) as exc:
                raise OutcomeUnknown(
                    f"the mail server connection broke while the message was being sent ({exc}); "
                    "it may have arrived"
                ) from exc
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def _open(self) -> smtplib.SMTP:
        settings = self.settings
        host, port, timeout = settings.smtp_host or "", settings.smtp_port, settings.smtp_timeout_s
        try:
            if settings.smtp_ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=self._tls())
            else:
                smtp = smtplib.SMTP(host, port, timeout=timeout)
            smtp.ehlo()
            if settings.smtp_starttls:
                smtp.starttls(context=self._tls())
                smtp.ehlo()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryRefused(
                f"the mail server refused the login of ARV_SMTP_USERNAME ({exc.smtp_code}): fix the "
                "settings, then resend"
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelUnavailable(f"cannot reach the mail server {host}:{port}: {exc}") from exc
        return smtp

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.smtp_ca_file or None)

    def _envelope(self, smtp: smtplib.SMTP, sender: str, recipient: str) -> None:
        try:
            code, answer = smtp.mail(sender)
            if code != 250:
                raise _answer_error(code, answer, "refused the sender address")
            code, answer = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise _answer_error(code, answer, f"refused the address {recipient}")
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise ChannelUnavailable(f"the mail server connection broke before sending: {exc}") from exc


def _set_subject(mail: EmailMessage, subject: str) -> None:
    """Set `subject` as RFC 2047 encoded words (UTF-8, base64), folded at 76 characters a line.

    The e-mail package's own folding of a plain value is not read back as written: a long run of
    text with `"`, `;` or `&` is moved whole to a continuation line, which readers show after a space,
    and any "=?charset?q?...?=" in a name is taken for an encoded word, which readers show decoded.
    Encoded words can break anywhere and decode to exactly the text. A header is also one line:
    the package refuses CR, LF and every other break `str.splitlines` knows ("Header values may not
    contain linefeed or carriage return characters"), so `one_line` comes first.
    """
    mail.set_raw("Subject", Header(one_line(subject), "utf-8", header_name="Subject").encode())


def _answer_error(code: int, answer: bytes | str, what: str) -> Exception:
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
    reason = f"the mail server {what}: {code} {text}"
    # 5xx is the server's final word; 4xx (mailbox busy, greylisting) passes.
    return DeliveryRefused(reason) if code >= 500 else ChannelUnavailable(reason)
