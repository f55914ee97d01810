from django.contrib import admin, messages

from osmos.tenancy.models import ApiToken, Membership, Organization
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
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "organization__name", "organization__slug"]
    fields = ["name", "organization", "created_by", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = [revoke_tokens]

    def has_add_permission(self, request) -> bool:
        return False
