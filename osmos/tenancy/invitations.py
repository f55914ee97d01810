"""How people join: invitations to an organization, and sign-up links for new accounts.

Neither flow tells anyone but the owner of an address whether it has an account: inviting an
address always sends an invitation, and asking to sign up always answers "check your inbox"
(the mail says either "finish signing up" or "you already have an account").

An invitation's accept link carries a secret stored hashed (like API tokens); it works once,
for ``INVITATION_VALID_DAYS`` (7) days, and resending replaces it. The invitation's role is
capped when accepted by its inviter's current role (an inviter who lost rights passes none on).
Invitation rows are tenant rows: the accept page finds one by its secret before knowing the
organization, so that lookup is trusted (``osmos.rls``), like an API token's.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from osmos.rls import context as rls
from osmos.tenancy.mail_limits import mail_allowed
from osmos.tenancy.models import (
    Invitation,
    Membership,
    Organization,
    Role,
    new_secret_token,
    secret_matches,
    split_lookup,
)
from osmos.tenancy.services import (
    NotAllowed,
    TenancyError,
    actor_role,
    grantable_roles,
    role_capped_by,
    user_create,
)

logger = logging.getLogger(__name__)

_SIGNUP_SALT = "osmos.tenancy.signup"


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    secret: str  # in the mailed link only, never stored


def _send(*, to: str, template: str, context: dict) -> None:
    subject = render_to_string(f"tenancy/email/{template}_subject.txt", context).strip()
    body = render_to_string(f"tenancy/email/{template}.txt", context)
    try:
        send_mail(subject, body, None, [to])
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("Could not send the %s mail: %s", template, error)
        raise TenancyError("The e-mail could not be sent; please try again later.") from None


def _normalize_email(email: str) -> str:
    email = get_user_model().objects.normalize_email(email.strip()).lower()
    if not email or len(email) > 254 or "@" not in email:
        raise TenancyError("Enter a valid e-mail address (at most 254 characters).")
    return email


def pending_invitations(*, organization: Organization):
    return Invitation.objects.for_organization(organization).filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )


def _issue_secret(invitation: Invitation) -> str:
    secret, invitation.lookup, invitation.token_hash = new_secret_token()
    now = timezone.now()
    invitation.sent_at = now
    invitation.expires_at = now + timedelta(days=settings.INVITATION_VALID_DAYS)
    return secret


def _mail_invitation(issued: IssuedInvitation, *, base_url: str) -> None:
    invitation = issued.invitation
    _send(
        to=invitation.email,
        template="invitation",
        context={
            "organization": invitation.organization,
            "role": invitation.role,
            "inviter": invitation.invited_by.email if invitation.invited_by else None,
            "url": base_url + reverse("invitation_accept", args=[issued.secret]),
            "expires_at": invitation.expires_at,
        },
    )


def _check_may_invite(*, role: str, actor) -> None:
    if role not in Role.values:
        raise TenancyError(f"Unknown role {role!r}.")
    acting = actor_role(actor)
    if acting not in (Role.OWNER, Role.ADMIN):
        raise NotAllowed("Only owners and admins can invite people.")
    if role not in grantable_roles(acting):
        raise NotAllowed("Only an owner can invite an owner.")


@transaction.atomic
def invitation_create(
    *, organization: Organization, email: str, role: str, actor, invited_by, base_url: str
) -> IssuedInvitation:
    """Invite ``email`` with ``role`` and mail the link. Raises NotAllowed or TenancyError."""
    _check_may_invite(role=role, actor=actor)
    email = _normalize_email(email)
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise TenancyError(f"{email} is already a member.")
    pending = pending_invitations(organization=organization)
    if pending.filter(email=email).exists():
        raise TenancyError(f"{email} is already invited: resend or revoke that invitation.")
    if pending.count() >= settings.ORGANIZATION_MAX_PENDING_INVITATIONS:
        raise TenancyError(
            f"At most {settings.ORGANIZATION_MAX_PENDING_INVITATIONS} invitations can be "
            "pending at once: revoke some first."
        )
    invitation = Invitation(
        organization=organization, email=email, role=role, invited_by=invited_by
    )
    secret = _issue_secret(invitation)
    invitation.save()
    issued = IssuedInvitation(invitation=invitation, secret=secret)
    _mail_invitation(issued, base_url=base_url)
    return issued


def _check_may_handle(invitation: Invitation, actor) -> None:
    acting = actor_role(actor)
    if acting not in (Role.OWNER, Role.ADMIN):
        raise NotAllowed("Only owners and admins can manage invitations.")
    if invitation.role == Role.OWNER and acting != Role.OWNER:
        raise NotAllowed("Only an owner can handle an invitation to become owner.")


@transaction.atomic
def invitation_resend(*, invitation: Invitation, actor, base_url: str) -> IssuedInvitation:
    """A new link (the old one stops working), valid 7 days from now, mailed again."""
    _check_may_handle(invitation, actor)
    if not invitation.is_pending and invitation.status != "expired":
        raise TenancyError(f"This invitation was {invitation.status}; invite the person again.")
    secret = _issue_secret(invitation)
    invitation.save(update_fields=["lookup", "token_hash", "sent_at", "expires_at"])
    issued = IssuedInvitation(invitation=invitation, secret=secret)
    _mail_invitation(issued, base_url=base_url)
    return issued


def invitation_revoke(*, invitation: Invitation, actor) -> Invitation:
    _check_may_handle(invitation, actor)
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation


def invitation_for_secret(*, secret: str, lock: bool = False) -> Invitation | None:
    """The pending invitation whose link carries ``secret``, in any organization, or None."""
    lookup = split_lookup(secret)
    if lookup is None:
        return None
    candidates = Invitation.objects.select_related("organization", "invited_by").filter(
        lookup=lookup, accepted_at__isnull=True, revoked_at__isnull=True
    )
    if lock:
        candidates = candidates.select_for_update(of=("self",))
    with rls.trusted():
        found = [i for i in candidates if secret_matches(secret, i.token_hash)]
    if not found or not found[0].is_pending:
        return None
    return found[0]


def _role_on_accept(invitation: Invitation) -> str | None:
    """The invitation's role capped by the inviter's current role; None if they left."""
    return role_capped_by(
        invitation.role,
        user_id=invitation.invited_by_id,
        organization_id=invitation.organization_id,
    )


@transaction.atomic
def invitation_accept(*, secret: str, user) -> Membership:
    """``user`` joins the invitation's organization; the link stops working.

    A person who already is a member keeps their role. Raises TenancyError when the link is
    unknown, used, revoked or expired.
    """
    invitation = invitation_for_secret(secret=secret, lock=True)
    if invitation is None:
        raise TenancyError("This invitation link is not valid any more (used, revoked or expired).")
    with rls.tenant_scope(organization_id=invitation.organization_id):
        role = _role_on_accept(invitation)
        if role is None:
            raise TenancyError("This invitation is not valid any more; ask for a new one.")
        membership, _created = Membership.objects.get_or_create(
            user=user, organization_id=invitation.organization_id, defaults={"role": role}
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


@transaction.atomic
def invitation_accept_as_new_user(*, secret: str, password: str):
    """Create the invitee's account (the link proves the address) and accept: no new
    organization is created. Raises TenancyError."""
    invitation = invitation_for_secret(secret=secret)
    if invitation is None:
        raise TenancyError("This invitation link is not valid any more (used, revoked or expired).")
    user = user_create(email=invitation.email, password=password)
    invitation_accept(secret=secret, user=user)
    return user


# --- sign-up links ----------------------------------------------------------------------------


def signup_request(*, email: str, base_url: str) -> None:
    """Mail a sign-up link, or, when the address has an account, a note saying so.

    Over the hourly mail limit of the address nothing is sent, and the answer is the same.
    """
    email = _normalize_email(email)
    if not mail_allowed(
        kind="signup", email=email, per_hour=settings.SIGNUP_MAILS_PER_ADDRESS_PER_HOUR
    ):
        logger.warning("Sign-up mail not sent: hourly limit of the address reached")
        return
    if get_user_model().objects.filter(username__iexact=email).exists():
        _send(
            to=email,
            template="account_exists",
            context={
                "login_url": base_url + reverse("login"),
                "reset_url": base_url + reverse("password_reset"),
            },
        )
        return
    token = signing.dumps({"email": email}, salt=_SIGNUP_SALT)
    _send(
        to=email,
        template="signup",
        context={
            "url": base_url + reverse("signup_finish", args=[token]),
            "hours": settings.SIGNUP_LINK_VALID_SECONDS // 3600,
        },
    )


def signup_email(*, token: str) -> str | None:
    """The address a sign-up link was sent to, or None when the link is forged or too old."""
    try:
        data = signing.loads(token, salt=_SIGNUP_SALT, max_age=settings.SIGNUP_LINK_VALID_SECONDS)
    except signing.BadSignature:
        return None
    email = data.get("email") if isinstance(data, dict) else None
    return email if isinstance(email, str) else None


def invitation_roles_for(actor) -> list[str]:
    """Roles the actor may offer in an invitation (for forms)."""
    return grantable_roles(actor_role(actor))
