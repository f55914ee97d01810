"""Organizations, memberships, invitations and API tokens: who may see which tenant data.

Every tenant model inherits :class:`TenantModel`; its manager's ``for_organization`` is the
one door to tenant rows on a request path, and ``locked`` the one way to re-read a row for
update. Reads across organizations (workers, the admin) say so: ``dangerously_unscoped()``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN})
# Higher is more power; a token's or invitation's role is capped by its creator's with min().
ROLE_RANK = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def lesser_role(a: str, b: str) -> str:
    """The less powerful of two roles."""
    return a if ROLE_RANK[Role(a)] <= ROLE_RANK[Role(b)] else b


class TokenRole(models.TextChoices):
    """Roles a token can carry: never owner (a token never grants or takes ownership)."""

    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="uniq_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in MANAGER_ROLES


class TenantQuerySet(models.QuerySet):
    def for_organization(self, organization: Organization | None) -> TenantQuerySet:
        """Only ``organization``'s rows. Fails closed: no organization is an error, not "all"."""
        if organization is None:
            raise ValueError("a tenant query needs an organization")
        return self.filter(organization=organization)

    def locked(self, instance: TenantModel, *, of: tuple[str, ...] = ()) -> TenantModel:
        """``instance`` re-read with ``SELECT … FOR UPDATE``, still inside its organization.

        For services that re-lock a row they were given: the organization filter keeps a
        row of another tenant out even when the caller passed a stale or foreign instance.
        Call inside ``transaction.atomic()``; raises ``DoesNotExist`` when the row is gone.
        ``of``: lock only these tables (``("self",)`` beside a ``select_related`` outer join).
        """
        if instance.organization_id is None:
            raise ValueError("a tenant row without an organization cannot be re-locked")
        scoped = self.select_for_update(of=of).filter(organization_id=instance.organization_id)
        return scoped.get(pk=instance.pk)

    def dangerously_unscoped(self) -> TenantQuerySet:
        """Every organization's rows: for workers and the admin, never on a tenant request path.

        The name is the point: a reviewer searching for ``dangerously_`` finds every read
        that the tenant scope does not cover.
        """
        return self.all()


class TenantModel(models.Model):
    """Base of every row that belongs to one organization."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


TOKEN_PREFIX = "osm_"
_LOOKUP_LEN = 8


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret_token() -> tuple[str, str, str]:
    """A fresh token: ``(token, lookup, hash)``. 256 random bits; only the hash is stored."""
    body = secrets.token_urlsafe(32)
    token = f"{TOKEN_PREFIX}{body}"
    return token, body[:_LOOKUP_LEN], hash_secret(token)


def split_lookup(token: str) -> str | None:
    """The lookup prefix of a presented token, or None when it cannot be one of ours."""
    if not token.startswith(TOKEN_PREFIX) or len(token) < len(TOKEN_PREFIX) + 32:
        return None
    return token[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + _LOOKUP_LEN]


def secret_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(token), stored_hash)


class ApiToken(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    lookup = models.CharField(max_length=16, db_index=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # The token's own role; it acts with min(role, the creator's current role).
    role = models.CharField(max_length=10, choices=TokenRole.choices, default=TokenRole.ADMIN)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.organization})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired


class Invitation(TenantModel):
    """An e-mail address invited into an organization with a role.

    The accept link carries a secret (stored hashed, like API tokens) and works once, until
    ``expires_at``. Resending issues a new secret; the old link stops working.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    lookup = models.CharField(max_length=16, db_index=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.organization} ({self.role})"

    @property
    def is_pending(self) -> bool:
        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > timezone.now()
        )

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "pending" if self.expires_at > timezone.now() else "expired"
