from django.contrib import admin, messages
from django.utils import timezone

from osmos.tenancy.models import ApiToken, Invitation, Membership, Organization
from osmos.tenancy.services import api_token_revoke


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__email", "user__username", "organization__name", "organization__slug"]
    autocomplete_fields = ["user", "organization"]


@admin.action(description="Revoke selected tokens")
def revoke_tokens(modeladmin, request, queryset):
    for token in queryset.filter(revoked_at__isnull=True):
        api_token_revoke(token=token)
    messages.success(request, "Selected tokens revoked.")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
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
    fields = [
        "name",
        "organization",
        "role",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = fields
    actions = [revoke_tokens]

    def has_add_permission(self, request) -> bool:
        return False


@admin.action(description="Revoke selected invitations")
def revoke_invitations(modeladmin, request, queryset):
    queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    messages.success(request, "Selected invitations revoked.")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
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
    readonly_fields = fields
    actions = [revoke_invitations]

    def has_add_permission(self, request) -> bool:
        return False
