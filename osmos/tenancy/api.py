"""REST API of the tenancy app (SPEC §2, §6): the caller's organization, members,
invitations and API tokens.

Views are thin: serializers check the shape, ``services``/``invitations`` decide who may do
what (``NotAllowed`` → 403, ``LastOwner`` → 409, other refusals → 400). Members are reached by
their membership id, invitations and tokens by UUID, always within the caller's organization.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from osmos.api import TenantScopedViewSet, json_error
from osmos.tenancy import invitations, services
from osmos.tenancy.models import ApiToken, Invitation, Membership, Role, TokenRole
from osmos.tenancy.views import base_url


class OrganizationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    slug = serializers.SlugField()
    role = serializers.ChoiceField(choices=["owner", "admin", "member"])


class CurrentOrganizationView(APIView):
    @extend_schema(
        summary="The organization the caller acts for",
        responses=OrganizationSerializer,
        examples=[
            OpenApiExample(
                "Token of Acme",
                value={"id": "6f1c…", "name": "Acme", "slug": "acme", "role": "admin"},
                response_only=True,
            )
        ],
    )
    def get(self, request):
        membership = request._request.membership
        org = membership.organization
        return Response({"id": org.pk, "name": org.name, "slug": org.slug, "role": membership.role})


def _refusal(error: services.TenancyError) -> Response:
    if isinstance(error, services.NotAllowed):
        return json_error(str(error), status.HTTP_403_FORBIDDEN)
    if isinstance(error, services.LastOwner):
        return json_error(str(error), status.HTTP_409_CONFLICT)
    return json_error(str(error), status.HTTP_400_BAD_REQUEST)


# Members, invitations and tokens: listed, read one by one, removed (``destroy``). A refused
# tenancy change (``services.TenancyError``) answers 403 (the role does not allow it), 409 (no
# owner would be left) or 400, with the service's message. (A comment, not a docstring: the
# schema would show a docstring here as every operation's description.)
class _TenancyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantScopedViewSet
):
    def handle_exception(self, exc):
        if isinstance(exc, services.TenancyError):
            return _refusal(exc)
        return super().handle_exception(exc)


def _acting_user(request):
    """The person behind the request: the session's, or the token's creator."""
    token = getattr(request._request.membership, "token", None)
    return token.created_by if token is not None else request.user


_ERRORS = {
    400: OpenApiResponse(description="Invalid input"),
    401: OpenApiResponse(description="No or an invalid, revoked or expired token"),
    403: OpenApiResponse(description="The caller's role does not allow this"),
    404: OpenApiResponse(description="No such object in the caller's organization"),
}


# --- members ---------------------------------------------------------------------------------


class MemberSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email")

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "created_at"]


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


@extend_schema_view(
    list=extend_schema(summary="Members of the organization"),
    retrieve=extend_schema(summary="One member", responses={200: MemberSerializer, **_ERRORS}),
    partial_update=extend_schema(
        summary="Change a member's role (only owners grant or take the owner role)",
        request=RoleSerializer,
        responses={
            200: MemberSerializer,
            **_ERRORS,
            409: OpenApiResponse(description="The organization would have no owner left"),
        },
    ),
    destroy=extend_schema(
        summary="Remove a member (your own id: leave); their tokens here are revoked",
        responses={
            204: None,
            **_ERRORS,
            409: OpenApiResponse(description="The organization would have no owner left"),
        },
    ),
)
class MemberViewSet(_TenancyViewSet):
    model = Membership
    serializer_class = MemberSerializer
    lookup_value_converter = "int"
    # Anyone may delete their own membership (leave, SPEC §2); the service refuses a member
    # removing someone else (403) and the last owner leaving (409).
    member_actions = ("destroy",)
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def safely_get_queryset(self, queryset):
        return queryset.select_related("user").order_by("user__email")

    def partial_update(self, request, pk=None):
        membership = self.get_object()
        body = RoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = services.member_set_role(
            membership=membership, role=body.validated_data["role"], actor=self.membership
        )
        return Response(MemberSerializer(membership).data)

    def destroy(self, request, pk=None):
        membership = self.get_object()
        services.member_remove(membership=membership, actor=self.membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invitations -----------------------------------------------------------------------------


class InvitationSerializer(serializers.ModelSerializer):
    invited_by = serializers.EmailField(source="invited_by.email", allow_null=True, default=None)
    status = serializers.ChoiceField(
        choices=["pending", "expired", "accepted", "revoked"], read_only=True
    )

    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "role",
            "status",
            "invited_by",
            "created_at",
            "sent_at",
            "expires_at",
        ]


class InvitationCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


@extend_schema_view(
    list=extend_schema(summary="Invitations not accepted or revoked (pending and expired)"),
    retrieve=extend_schema(
        summary="One invitation", responses={200: InvitationSerializer, **_ERRORS}
    ),
    create=extend_schema(
        summary="Invite an e-mail address (the link is mailed, never returned)",
        request=InvitationCreateSerializer,
        responses={201: InvitationSerializer, **_ERRORS},
    ),
    destroy=extend_schema(summary="Revoke an invitation", responses={204: None, **_ERRORS}),
)
class InvitationViewSet(_TenancyViewSet):
    model = Invitation
    serializer_class = InvitationSerializer
    lookup_value_converter = "uuid"

    def safely_get_queryset(self, queryset):
        return queryset.select_related("invited_by").filter(
            accepted_at__isnull=True, revoked_at__isnull=True
        )

    def create(self, request):
        body = InvitationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        issued = invitations.invitation_create(
            organization=self.organization,
            email=body.validated_data["email"],
            role=body.validated_data["role"],
            actor=self.membership,
            invited_by=_acting_user(request),
            base_url=base_url(request),
        )
        return Response(
            InvitationSerializer(issued.invitation).data, status=status.HTTP_201_CREATED
        )

    def destroy(self, request, pk=None):
        invitations.invitation_revoke(invitation=self.get_object(), actor=self.membership)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Send the invitation again with a new link (the old one stops working)",
        request=None,
        responses={200: InvitationSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def resend(self, request, pk=None):
        issued = invitations.invitation_resend(
            invitation=self.get_object(), actor=self.membership, base_url=base_url(request)
        )
        return Response(InvitationSerializer(issued.invitation).data)


# --- API tokens ------------------------------------------------------------------------------


class ApiTokenSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=TokenRole.choices)
    effective_role = serializers.SerializerMethodField(
        help_text="min(role, the creator's current role); null once the creator left"
    )
    created_by = serializers.EmailField(source="created_by.email", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)

    def get_effective_role(self, token) -> str | None:
        return services.api_token_effective_role(token=token)


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(help_text="The secret, shown in this response only.")


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=TokenRole.choices, default=TokenRole.MEMBER)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


@extend_schema_view(
    list=extend_schema(summary="API tokens of the organization (never their secrets)"),
    retrieve=extend_schema(summary="One API token", responses={200: ApiTokenSerializer, **_ERRORS}),
    create=extend_schema(
        summary="Issue a token (role at most the caller's; the secret is shown this once)",
        request=ApiTokenCreateSerializer,
        responses={201: ApiTokenCreatedSerializer, **_ERRORS},
    ),
    destroy=extend_schema(summary="Revoke a token", responses={204: None, **_ERRORS}),
)
class ApiTokenViewSet(_TenancyViewSet):
    model = ApiToken
    serializer_class = ApiTokenSerializer
    lookup_value_converter = "uuid"

    def safely_get_queryset(self, queryset):
        return queryset.select_related("created_by")

    def create(self, request):
        body = ApiTokenCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        issued = services.api_token_create(
            organization=self.organization,
            name=body.validated_data["name"],
            role=body.validated_data["role"],
            expires_at=body.validated_data["expires_at"],
            created_by=_acting_user(request),
            actor=self.membership,
        )
        data = ApiTokenSerializer(issued.token).data
        return Response({**data, "token": issued.secret}, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.api_token_revoke(token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
