"""Django admin for support staff.

Staff edit memberships here outside the members API, so the rule that an organization keeps
at least one owner (SPEC §2) is checked here too, under the same organization row lock as
``services.member_set_role``/``member_remove``: a form that demotes, moves or deletes the last
owner is refused with ``LAST_OWNER_MESSAGE`` and nothing is written.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from osmos.tenancy.models import ApiToken, Invitation, Membership, Organization, Role
from osmos.tenancy.services import (
    LAST_OWNER_MESSAGE,
    api_token_revoke,
    organization_lock,
    owners_besides,
)


def _orphaned_organizations(memberships) -> list[Organization]:
    """The organizations that would have no owner left without ``memberships`` (locked until
    the transaction ends)."""
    by_organization: dict[int, list[int]] = {}
    for membership in memberships:
        by_organization.setdefault(membership.organization_id, []).append(membership.pk)
    orphaned = []
    for organization_id, ids in sorted(by_organization.items()):
        organization_lock(organization_id)
        had_owner = Membership.objects.filter(pk__in=ids, role=Role.OWNER).exists()
        if had_owner and not owners_besides(organization_id=organization_id, membership_ids=ids):
            orphaned.append(Organization.objects.get(pk=organization_id))
    return orphaned


class MembershipInlineFormSet(BaseInlineFormSet):
    """The members of one organization as edited together: at least one owner remains."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors) or self.instance.pk is None:
            return
        organization_lock(self.instance.pk)
        kept = [f for f in self.forms if f.cleaned_data and not self._should_delete_form(f)]
        owners = [f for f in kept if f.cleaned_data.get("role") == Role.OWNER]
        edited = [f.instance.pk for f in self.forms if f.instance.pk is not None]
        others = owners_besides(organization_id=self.instance.pk, membership_ids=edited)
        had_owner = Membership.objects.filter(organization=self.instance, role=Role.OWNER).exists()
        if had_owner and not owners and not others:
            raise ValidationError(LAST_OWNER_MESSAGE)


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipInlineFormSet
    extra = 0
    autocomplete_fields = ["user"]


class MembershipAdminForm(forms.ModelForm):
    """One membership: demoting its owner, or moving it to another organization, must leave
    its organization another owner."""

    class Meta:
        model = Membership
        fields = ["user", "organization", "role"]

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.instance.pk is None:
            return cleaned
        before = Membership.objects.filter(pk=self.instance.pk).first()
        if before is None or before.role != Role.OWNER:
            return cleaned
        stays_owner = (
            cleaned.get("role") == Role.OWNER
            and cleaned.get("organization") is not None
            and cleaned["organization"].pk == before.organization_id
        )
        if not stays_owner and _orphaned_organizations([before]):
            raise ValidationError(LAST_OWNER_MESSAGE)
        return cleaned


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipAdminForm
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__email", "user__username", "organization__name", "organization__slug"]
    autocomplete_fields = ["user", "organization"]
    actions = ["delete_selected"]  # this class's, in place of the site-wide action

    @admin.action(description="Delete selected memberships", permissions=["delete"])
    def delete_selected(self, request, queryset):
        """Django's delete (with its confirmation page, which posts back to this action),
        refused when it would leave an organization without an owner."""
        with transaction.atomic():
            orphaned = _orphaned_organizations(queryset)
            if orphaned:
                names = ", ".join(organization.name for organization in orphaned)
                self.message_user(request, f"{LAST_OWNER_MESSAGE} ({names})", messages.ERROR)
                return None
            return admin_actions.delete_selected(self, request, queryset)

    def delete_view(self, request, object_id, extra_context=None):
        with transaction.atomic():
            membership = self.get_object(request, object_id)
            if membership is not None and _orphaned_organizations([membership]):
                self.message_user(request, LAST_OWNER_MESSAGE, messages.ERROR)
                url = reverse("admin:tenancy_membership_change", args=[membership.pk])
                return HttpResponseRedirect(url)
            return super().delete_view(request, object_id, extra_context)


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Objects their organization issues: support staff only look at them (and revoke)."""

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request) -> bool:
        return False


@admin.action(description="Revoke selected tokens")
def revoke_tokens(modeladmin, request, queryset):
    for token in queryset.filter(revoked_at__isnull=True):
        api_token_revoke(token=token)
    messages.success(request, "Selected tokens revoked.")


@admin.register(ApiToken)
class ApiTokenAdmin(_ReadOnlyAdmin):
    """Tokens are issued by their organization; support can only look and revoke."""

    list_display = [
        "name",
        "organization",
        "role",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "organization__name", "organization__slug"]
    fields = list_display
    actions = [revoke_tokens]


@admin.action(description="Revoke selected invitations")
def revoke_invitations(modeladmin, request, queryset):
    queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    messages.success(request, "Selected invitations revoked.")


@admin.register(Invitation)
class InvitationAdmin(_ReadOnlyAdmin):
    """Invitations are sent by their organization; support can only look and revoke."""

    list_display = ["email", "organization", "role", "invited_by", "created_at", "expires_at"]
    list_filter = ["role", "organization"]
    search_fields = ["email", "organization__name", "organization__slug"]
    fields = [
        "email",
        "organization",
        "role",
        "invited_by",
        "created_at",
        "sent_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]
    actions = [revoke_invitations]
