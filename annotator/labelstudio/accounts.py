"""Annotator accounts in the Label Studio organization: people who can log in, and whose work arrives.

An account made through ``POST /api/users`` has no password (nobody can log in with it) and no
active organization, and Label Studio sends annotation webhooks through the submitting user's
active organization: such a person's labels would never reach the store. So a new account is made
the way a person signs up, through the organization's invite link, with a one-time password that
is shown once (never logged); an existing member's active organization is set so their submits
send webhooks.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from ..errors import LabelStudioError
from .client import LabelStudioClient

log = logging.getLogger(__name__)

PASSWORD_BYTES = 12  # 16 URL-safe characters


@dataclass(frozen=True)
class AccountReport:
    """One annotator account after ``add_annotators``."""

    email: str
    user_id: int
    created: bool  # a new account (False: an existing member of the organization)
    password: str | None  # the one-time password of a new account; shown once, never stored
    activated: bool  # its active organization was set now (its submits now send webhooks)

    def to_dict(self) -> dict:
        return asdict(self)


def add_annotators(client: LabelStudioClient, emails: Iterable[str]) -> list[AccountReport]:
    """Make each email a member of the organization who can log in and whose labels reach the store.

    Raises
    ------
    LabelStudioError
        If Label Studio refuses a sign-up (e.g. the email belongs to an account of another
        organization) or cannot be reached; accounts made before the failure stay made.
    """
    organization = client.whoami().get("active_organization")
    if not isinstance(organization, int):
        raise LabelStudioError(
            "the API key's user has no active organization in Label Studio; log in to "
            "Label Studio once with that account, then run the command again"
        )
    reports = []
    for email in dict.fromkeys(e.strip() for e in emails):
        user = client.find_user(email)
        password = None
        if user is None:
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            client.sign_up(email, password)
            user = client.find_user(email)
            if user is None:
                raise LabelStudioError(
                    f"Label Studio signed {email} up, but the account is not a member of the "
                    "organization; is LABEL_STUDIO_API_KEY an account of this organization?"
                )
        activated = user.get("active_organization") != organization
        if activated:
            client.activate_membership(int(user["id"]), organization)
        log.info("annotator account %s (user %s): %s", email, user["id"], "created" if password else "existing")
        reports.append(AccountReport(email, int(user["id"]), password is not None, password, activated))
    return reports
