"""Writes of the tenancy app: organizations, members and API tokens.

Who may change what (SPEC §2):
- owners and admins manage members and tokens; only an owner grants or takes the owner role
  (an API token never carries ``owner``, so a token can never touch an owner);
- an organization keeps at least one owner: every change of a membership locks the
  organization's row first, so two owners demoting each other at once cannot both succeed;
- a token acts with min(its role, its creator's current role); removing a member revokes the
  tokens they created in that organization (``signals.py`` also covers deletions elsewhere).

Invitations and sign-up links live in ``invitations.py``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from osmos.tenancy.models import (
    ROLE_RANK,
    ApiToken,
    Membership,
    Organization,
    Role,
    TokenRole,
    lesser_role,
    new_secret_token,
    secret_matches,
    split_lookup,
)

# last_used_at is written at most this often per token, so API calls don't all write a row.
_LAST_USED_RESOLUTION = timedelta(seconds=60)
# An expiry further away than this is refused (a typo such as year 20260 would never expire).
MAX_TOKEN_LIFETIME = timedelta(days=3650)


class TenancyError(ValueError):
    """A refused tenancy change; the message is for the person who asked."""


class NotAllowed(TenancyError):
    """The actor's role does not allow this change."""


class LastOwner(TenancyError):
    """The change would leave the organization without an owner."""


LAST_OWNER_MESSAGE = "An organization keeps at least one owner: make someone else owner first."


def _unique_slug(name: str) -> str:
    base = slugify(name)[:90] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def organization_create(*, name: str, owner: AbstractBaseUser) -> Organization:
    """Create an organization with ``owner`` as its owner; the slug is the slugified name."""
    name = name.strip()
    if not name:
        raise TenancyError("An organization needs a name.")
    for _ in range(3):
        try:
            with transaction.atomic():
                org = Organization.objects.create(name=name, slug=_unique_slug(name))
            break
        except IntegrityError:  # another request took the slug between check and insert
            continue
    else:
        raise TenancyError("Could not find a free slug for this name; try another name.")
    Membership.objects.create(user=owner, organization=org, role=Role.OWNER)
    return org


def user_create(*, email: str, password: str):
    """A new person (username = e-mail). Raises TenancyError when the address is taken."""
    User = get_user_model()
    email = User.objects.normalize_email(email).strip().lower()
    if User.objects.filter(username__iexact=email).exists():
        raise TenancyError("An account with this email already exists; log in instead.")
    return User.objects.create_user(username=email, email=email, password=password)


@transaction.atomic
def user_signup(*, email: str, password: str, organization_name: str):
    """A new person and their first organization, which they own."""
    user = user_create(email=email, password=password)
    organization_create(name=organization_name, owner=user)
    return user


# --- members -------------------------------------------------------------------------------


def actor_role(actor) -> str | None:
    """The actor's role now: a person's is read again (it may have changed since the request
    began, e.g. demoted by a concurrent request); a token's was computed when it authenticated.
    None when the person is no longer a member."""
    if isinstance(actor, Membership):
        return Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
    return actor.role


def organization_lock(organization_id) -> None:
    """Serialize membership changes of one organization (a row lock held until commit); every
    writer of memberships takes it first, the admin's included."""
    Organization.objects.select_for_update().filter(pk=organization_id).values_list("pk").first()


def owners_besides(*, organization_id, membership_ids: Collection[int]) -> int:
    """How many owners the organization has other than ``membership_ids`` (call it under
    ``organization_lock``)."""
    return (
        Membership.objects.filter(organization_id=organization_id, role=Role.OWNER)
        .exclude(pk__in=list(membership_ids))
        .count()
    )


def _fresh(membership: Membership) -> Membership:
    fresh = Membership.objects.select_related("user").filter(pk=membership.pk).first()
    if fresh is None:
        raise TenancyError("This person is no longer a member.")
    return fresh


def _check_may_manage(role: str | None) -> None:
    if role not in (Role.OWNER, Role.ADMIN):
        raise NotAllowed("Only owners and admins can manage members.")


def grantable_roles(role: str | None) -> list[str]:
    """The roles someone with ``role`` may give (to members or invitations)."""
    if role == Role.OWNER:
        return [Role.OWNER, Role.ADMIN, Role.MEMBER]
    if role == Role.ADMIN:
        return [Role.ADMIN, Role.MEMBER]
    return []


@transaction.atomic
def member_set_role(*, membership: Membership, role: str, actor) -> Membership:
    """Change a member's role. Only owners grant or take away ownership; one owner remains.

    ``actor`` is the request's membership (a person's, or a token's). Raises NotAllowed,
    LastOwner or TenancyError.
    """
    if role not in Role.values:
        raise TenancyError(f"Unknown role {role!r}.")
    organization_lock(membership.organization_id)
    acting = actor_role(actor)
    _check_may_manage(acting)
    membership = _fresh(membership)
    if Role.OWNER in (role, membership.role) and acting != Role.OWNER:
        raise NotAllowed("Only an owner can grant or remove the owner role.")
    demotes_owner = membership.role == Role.OWNER and role != Role.OWNER
    if demotes_owner and not owners_besides(
        organization_id=membership.organization_id, membership_ids=[membership.pk]
    ):
        raise LastOwner("An organization keeps at least one owner.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor) -> None:
    """Remove a member, or let a person leave (``actor`` is their own membership).

    Their API tokens of this organization are revoked (``signals.py``).
    """
    organization_lock(membership.organization_id)
    membership = _fresh(membership)
    leaving = isinstance(actor, Membership) and actor.pk == membership.pk
    if not leaving:
        acting = actor_role(actor)
        _check_may_manage(acting)
        if membership.role == Role.OWNER and acting != Role.OWNER:
            raise NotAllowed("Only an owner can remove an owner.")
    if membership.role == Role.OWNER and not owners_besides(
        organization_id=membership.organization_id, membership_ids=[membership.pk]
    ):
        raise LastOwner(LAST_OWNER_MESSAGE)
    membership.delete()


def role_capped_by(role: str, *, user_id, organization_id) -> str | None:
    """``role`` capped at the current role of the person ``user_id`` in the organization (who
    gave it: a token's creator, an inviter); None when they are no longer a member. Without
    a person (``user_id`` None: issued on the command line) the role stands."""
    if user_id is None:
        return role
    current = (
        Membership.objects.filter(user_id=user_id, organization_id=organization_id)
        .values_list("role", flat=True)
        .first()
    )
    return None if current is None else lesser_role(role, current)


# --- API tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def api_token_create(
    *,
    organization: Organization,
    name: str,
    created_by=None,
    role: str = TokenRole.ADMIN,
    expires_at: datetime | None = None,
    actor=None,
) -> IssuedToken:
    """Issue a token. With an ``actor`` (a request's membership), the role may not exceed the
    actor's current role and only owners and admins may issue; without one (the command line,
    support) any token role is allowed."""
    name = name.strip()
    if not name:
        raise TenancyError("A token needs a name.")
    if len(name) > 100:
        raise TenancyError("A token name has at most 100 characters.")
    if role not in TokenRole.values:
        raise TenancyError("A token's role is admin or member.")
    if actor is not None:
        acting = actor_role(actor)
        if acting not in (Role.OWNER, Role.ADMIN):
            raise NotAllowed("Only owners and admins can create tokens.")
        if ROLE_RANK[Role(role)] > ROLE_RANK[Role(acting)]:
            raise NotAllowed("A token's role cannot be above your own.")
    if expires_at is not None:
        now = timezone.now()
        if expires_at <= now:
            raise TenancyError("The expiry must be in the future.")
        if expires_at - now > MAX_TOKEN_LIFETIME:
            raise TenancyError("The expiry is at most 10 years away.")
    secret, lookup, token_hash = new_secret_token()
    token = ApiToken.objects.create(
        organization=organization,
        name=name,
        lookup=lookup,
        token_hash=token_hash,
        created_by=created_by,
        role=role,
        expires_at=expires_at,
    )
    return IssuedToken(token=token, secret=secret)


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_tokens_revoke_of_creator(*, organization_id, user_id) -> int:
    """Revoke the active tokens ``user_id`` created in the organization (they left it)."""
    return ApiToken.objects.filter(
        organization_id=organization_id, created_by_id=user_id, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())


def api_token_effective_role(*, token: ApiToken) -> str | None:
    """min(token role, creator's current role); None when the creator is no longer a member.

    A token without a creator (issued on the command line) keeps its own role.
    """
    return role_capped_by(
        token.role, user_id=token.created_by_id, organization_id=token.organization_id
    )


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """The active, unexpired token matching ``secret`` (constant-time comparison), or None.

    The returned token carries ``effective_role`` (see ``api_token_effective_role``).
    """
    lookup = split_lookup(secret)
    if lookup is None:
        return None
    candidates = ApiToken.objects.select_related("organization").filter(
        lookup=lookup, revoked_at__isnull=True
    )
    for token in candidates:
        if secret_matches(secret, token.token_hash):
            if token.is_expired:
                return None
            token.effective_role = api_token_effective_role(token=token)
            if token.effective_role is None:
                return None
            now = timezone.now()
            if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
                ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
                token.last_used_at = now
            return token
    return None
