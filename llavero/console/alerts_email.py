"""Alert emails: the same events as webhooks, told to a project's owners in es-419 or English
(`LLAVERO_SMTP_LANGUAGE`), from the console's gettext catalogs. The template
`email/alert.txt` writes the subject on its first line and the text after it."""

from __future__ import annotations

from typing import Any

from llavero.console import i18n, templating


def render(lang: str, body: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain text) of the email for an event body."""
    text = templating.render(i18n.normalize(lang) or "en", "email/alert.txt", event=body)
    lines = [line.strip() for line in text.strip().splitlines()]
    subject, rest = lines[0], lines[1:]
    return subject, "\n".join(rest).strip() + "\n"
