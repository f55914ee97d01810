"""Writes of the tenancy app: organizations, members, API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from osmos.tenancy.models import (
    ApiToken,
    Membership,
    Organization,
    Role,
    new_secret_token,
    secret_matches,
    split_lookup,
)

# last_used_at is written at most this often per token, so API calls don't all write a row.
_LAST_USED_RESOLUTION = timedelta(seconds=60)


class TenancyError(ValueError):
    """A refused tenancy change; the message is for the person who asked."""


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


@transaction.atomic
def user_signup(*, email: str, password: str, organization_name: str):
    """A new person and their first organization, which they own."""
    User = get_user_model()
    email = User.objects.normalize_email(email).lower()
    if User.objects.filter(username__iexact=email).exists():
        raise TenancyError("An account with this email already exists.")
    user = User.objects.create_user(username=email, email=email, password=password)
    organization_create(name=organization_name, owner=user)
    return user


def member_add(*, organization: Organization, email: str, role: str) -> Membership:
    """Add an existing user (by email) to the organization."""
    User = get_user_model()
    if role not in Role.values:
        raise TenancyError(f"Unknown role {role!r}.")
    user = User.objects.filter(email__iexact=email.strip()).first()
    if user is None:
        raise TenancyError("No account uses this email; ask them to sign up first.")
    membership, created = Membership.objects.get_or_create(
        user=user, organization=organization, defaults={"role": role}
    )
    if not created:
        raise TenancyError(f"{email} is already a member.")
    return membership


@transaction.atomic
def member_set_role(*, membership: Membership, role: str, acting: Membership) -> Membership:
    """Change a member's role. Only owners grant or take away ownership; one owner remains."""
    if role not in Role.values:
        raise TenancyError(f"Unknown role {role!r}.")
    touches_owner = Role.OWNER in (role, membership.role)
    if touches_owner and acting.role != Role.OWNER:
        raise TenancyError("Only an owner can grant or remove the owner role.")
    if membership.role == Role.OWNER and role != Role.OWNER:
        owners = Membership.objects.select_for_update().filter(
            organization=membership.organization, role=Role.OWNER
        )
        if owners.count() <= 1:
            raise TenancyError("An organization keeps at least one owner.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def api_token_create(*, organization: Organization, name: str, created_by=None) -> IssuedToken:
    name = name.strip()
    if not name:
        raise TenancyError("A token needs a name.")
    secret, lookup, token_hash = new_secret_token()
    token = ApiToken.objects.create(
        organization=organization,
        name=name[:100],
        lookup=lookup,
        token_hash=token_hash,
        created_by=created_by,
    )
    return IssuedToken(token=token, secret=secret)


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """The active token matching ``secret`` (constant-time comparison), or None."""
    lookup = split_lookup(secret)
    if lookup is None:
        return None
    candidates = ApiToken.objects.select_related("organization").filter(
        lookup=lookup, revoked_at__isnull=True
    )
    for token in candidates:
        if secret_matches(secret, token.token_hash):
            now = timezone.now()
            if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
                ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
                token.last_used_at = now
            return token
    return None
