"""DRF authentication by organization API token: ``Authorization: Bearer <token>``."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from osmos.rls import context as rls
from osmos.tenancy.models import MANAGER_ROLES
from osmos.tenancy.services import api_token_authenticate


class TokenUser(AnonymousUser):
    """The caller behind an API token: authenticated, acting for one organization."""

    def __init__(self, token):
        self.token = token

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"token:{self.token.name}"


class TokenMembership:
    """What a token may do: its effective role, min(token role, creator's current role)."""

    def __init__(self, token):
        self.organization = token.organization
        self.role = token.effective_role
        self.user = None
        self.token = token

    @property
    def can_manage(self) -> bool:
        return self.role in MANAGER_ROLES


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Malformed token.") from None
        with rls.trusted():  # the token names its organization: find it across all of them
            token = api_token_authenticate(secret=secret)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired token.")
        rls.confine(organization_id=token.organization_id)
        request._request.membership = TokenMembership(token)
        request._request.organization = token.organization
        return TokenUser(token), token

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Describes the Bearer token in the OpenAPI schema."""

    target_class = ApiTokenAuthentication
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An organization API token: `Authorization: Bearer osm_…`",
        }
