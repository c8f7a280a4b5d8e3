"""What people read for the codes the API keeps as codes: verify outcomes, audit actions and the
names of the packaged plans (docs/console.md). The API, the CSV download and the audit rows keep
the codes; the console shows these names in the page's language.

The messages are marked with `N_` so that `pybabel extract` finds them; they are translated when
a page is drawn. A code with no name here (say, a plan named in a deployment's own TOML) is shown
as it is.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from typing import Final

from llavero.console import i18n
from llavero.core.codes import Code


def N_(message: str) -> str:  # noqa: N802 - the name pybabel looks for
    """Mark a message for extraction; translated later, by `name`."""
    return message


OUTCOMES: Final[Mapping[str, str]] = {
    Code.VALID: N_("Allowed"),
    Code.MALFORMED: N_("Malformed key"),
    Code.NOT_FOUND: N_("Unknown key"),
    Code.EXPIRED: N_("Expired key"),
    Code.DISABLED: N_("Disabled key"),
    Code.DELETED: N_("Deleted key"),
    Code.IP_NOT_ALLOWED: N_("IP address not allowed"),
    Code.REFERRER_NOT_ALLOWED: N_("Website not allowed"),
    Code.APP_NOT_ALLOWED: N_("App not allowed"),
    Code.API_NOT_ALLOWED: N_("API not allowed"),
    Code.ENVIRONMENT_MISMATCH: N_("Wrong environment"),
    Code.RATE_LIMITED: N_("Rate limited"),
    Code.QUOTA_EXCEEDED: N_("Quota exceeded"),
}
"""A name for every verify code (`llavero.core.codes.Code`)."""

AUDIT_ACTIONS: Final[Mapping[str, str]] = {
    "key.create": N_("Key created"),
    "key.update": N_("Key changed"),
    "key.disable": N_("Key disabled"),
    "key.enable": N_("Key enabled"),
    "key.rotate": N_("Key rotated"),
    "key.delete": N_("Key deleted"),
    "key.undelete": N_("Key restored"),
    "key.purge": N_("Key removed for good"),
    "project.create": N_("Project created"),
    "project.rename": N_("Project renamed"),
    "project.delete": N_("Project deleted"),
    "project.billing_link": N_("Billing account linked"),
    "project.billing_unlink": N_("Billing account unlinked"),
    "billing.create": N_("Billing account created"),
    "billing.update": N_("Billing account changed"),
    "billing.close": N_("Billing account closed"),
    "token.create": N_("Management token created"),
    "token.revoke": N_("Management token revoked"),
    "user.create": N_("User created"),
    "user.update": N_("User changed"),
    "user.signin": N_("Signed in"),
    "user.signin_link": N_("Sign-in link issued"),
    "user.signin_link_used": N_("Sign-in link used"),
    "user.throttle_clear": N_("Sign-in throttle cleared"),
    "key.leak": N_("Key reported leaked"),
    "key.leak_resolved": N_("Leaked key rotated"),
    "token.leak": N_("Management token reported leaked"),
    "project.leak_policy": N_("Leak policy changed"),
    "member.add": N_("Member added"),
    "member.update": N_("Member's role changed"),
    "member.remove": N_("Member removed"),
    "member.join": N_("Invitation accepted"),
    "webhook.create": N_("Webhook created"),
    "webhook.update": N_("Webhook changed"),
    "webhook.delete": N_("Webhook deleted"),
    "webhook.rotate_secret": N_("Webhook secret rotated"),
    "webhook.disable": N_("Webhook turned off after failed deliveries"),
}
"""Every action the service layer writes to the audit log."""

PLANS: Final[Mapping[str, str]] = {
    "Free": N_("Free"),
    "Tier 1": N_("Tier 1"),
    "Tier 2": N_("Tier 2"),
    "Tier 3": N_("Tier 3"),
}
"""The display names of the packaged plans (llavero/core/plans.toml)."""


def name(code: str, names: Mapping[str, str], lang: str) -> str:
    """The name of `code` in `lang`, or the code itself when it has none."""
    return translate(code, names, i18n.translations(lang))


def translate(code: str, names: Mapping[str, str], translations: gettext.NullTranslations) -> str:
    message = names.get(code)
    return translations.gettext(message) if message is not None else code
