"""The one door to tenant data: it filters by the caller's organization itself."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.http import Http404
from django.test import override_settings
from django.urls import path
from rest_framework.response import Response

from connectors.models import Connector
from osmos.api import TenantScopedViewSet
from osmos.tenancy.scope import tenant_object_or_404
from tests.support.factories import make_source

pytestmark = pytest.mark.django_db


class CarelessViewSet(TenantScopedViewSet):
    """Narrows by returning every organization's rows: the door must still hold."""

    model = Connector

    def safely_get_queryset(self, queryset):
        return Connector.objects.all()

    def retrieve(self, request, pk=None):
        return Response({"name": self.get_object().name})

    def list(self, request):
        return Response([c.name for c in self.get_queryset()])


urlpatterns = [
    path("careless/", CarelessViewSet.as_view({"get": "list"})),
    path("careless/<str:pk>/", CarelessViewSet.as_view({"get": "retrieve"})),
]


@override_settings(ROOT_URLCONF=__name__)
def test_a_careless_narrowing_still_answers_404_to_an_outsider(org_a, owner_client, api_b):
    source = make_source(org_a, name="A's orders")
    assert owner_client.get(f"/careless/{source.pk}/").json() == {"name": "A's orders"}
    response = api_b.get(f"/careless/{source.pk}/")
    assert response.status_code == 404
    assert api_b.get("/careless/").json() == []


@override_settings(ROOT_URLCONF=__name__)
def test_a_malformed_id_is_a_404_not_an_error(owner_client):
    assert owner_client.get("/careless/not-a-uuid/").status_code == 404


@pytest.mark.parametrize("method", ["get_queryset", "get_object"])
def test_a_viewset_cannot_override_the_door(method):
    with pytest.raises(TypeError, match="safely_get_queryset"):
        type("Sneaky", (TenantScopedViewSet,), {method: lambda self: None})


def test_tenant_object_or_404_finds_only_the_organizations_object(org_a, org_b):
    source = make_source(org_a)
    assert tenant_object_or_404(Connector, org_a, pk=source.pk) == source
    with pytest.raises(Http404):
        tenant_object_or_404(Connector, org_b, pk=source.pk)
    with pytest.raises(Http404):  # a queryset of every organization is scoped all the same
        tenant_object_or_404(Connector.objects.all(), org_b, pk=source.pk)
    with pytest.raises(Http404):
        tenant_object_or_404(Connector, org_a, pk="not-a-uuid")


def test_the_door_fails_closed_without_an_organization(org_a):
    """On SQLite too (no row-level security there): no organization is an error, not all."""
    source = make_source(org_a)
    with pytest.raises(ValueError, match="organization"):
        tenant_object_or_404(Connector, None, pk=source.pk)
    with pytest.raises(ValueError, match="organization"):
        Connector.objects.for_organization(None)


def test_locked_re_reads_the_row_inside_its_organization(org_a, org_b):
    source = make_source(org_a)
    with transaction.atomic():
        assert Connector.objects.locked(source) == source
    foreign = Connector(pk=source.pk, organization=org_b)  # a stale or forged instance
    with transaction.atomic(), pytest.raises(Connector.DoesNotExist):
        Connector.objects.locked(foreign)


def test_unscoped_reads_say_so(org_a, org_b):
    make_source(org_a)
    make_source(org_b)
    assert Connector.objects.dangerously_unscoped().count() == 2
