"""Tenant isolation sweep: every URL of the product, with organization A's objects, as B.

The routes are read from ``osmos.urls`` at test time (recursively through includes), so a
new route is swept without anyone editing this file; a route whose path parameter this file
cannot fill fails the test with "add an object for <param> of <route>". Public routes are
listed explicitly in ``PUBLIC_ROUTES``; the admin (staff only) is checked on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from rest_framework.test import APIClient

from connectors.selectors import source_for_ingest_token
from osmos.tenancy.models import Membership
from pipelines.models import Run
from tests.support.factories import TenantWorld

# Routes anyone may call (compared with the route text as built by ``_routes``).
PUBLIC_ROUTES = {
    "signup/": "sign-up page",
    "signup/<token>/": "authenticated by the signed link mailed to the address",
    "join/<token>/": "authenticated by the secret invitation link (tested in tests/tenancy)",
    "reset/<uidb64>/<token>/": "Django's password reset link (tested in tests/tenancy)",
    "password_reset/": "asks for a reset link; answers the same for every address",
    "login/": "login page",
    "logout/": "logs the caller out (POST); answering it would end the sweep's session",
    "api/v1/schema/": "the OpenAPI schema describes the API, not tenant data",
    "api/v1/docs/": "the API docs page",
    "ingest/<token>/": "authenticated by the secret ingest token itself (tested elsewhere)",
}
# The admin's own login and logout pages: open to anyone by design.
ADMIN_SESSION_ROUTES = {"admin/login/", "admin/logout/"}
# Routes without an object in the path are the caller's own (lists, forms): they are checked
# for leaks of A's names in their body instead.
METHODS = ("get", "post", "put", "patch", "delete")
# 302 = login redirect (pages); 401/403 = API without credentials.
ANONYMOUS_OK = {302, 401, 403, 405}
OUTSIDER_OK = {404, 405}


@dataclass(frozen=True)
class Route:
    text: str  # e.g. "api/v1/connectors/<pk>/duplicate/"
    params: tuple[str, ...]
    segments_before: tuple[str, ...]  # the static segment right before each parameter

    def url(self, values: dict[str, str]) -> str:
        url = "/" + self.text
        for name in self.params:
            url = url.replace(f"<{name}>", values[name])
        return url


_PATH_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


def _regex_to_route(regex: str) -> str:
    """``^connectors/(?P<pk>[^/.]+)/$`` → ``connectors/<pk>/`` (named groups only)."""
    text = regex.removeprefix("^").removesuffix("$")
    out, i = [], 0
    while i < len(text):
        if text.startswith("(?P<", i):
            name_end = text.index(">", i)
            name = text[i + 4 : name_end]
            depth, j = 1, name_end + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            out.append(f"<{name}>")
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out).replace("/?", "/").replace("\\", "")


def _pattern_text(pattern) -> str:
    if isinstance(pattern, RegexPattern):
        return _regex_to_route(pattern._regex)
    if isinstance(pattern, RoutePattern):
        return _PATH_PARAM.sub(lambda m: f"<{m.group('name')}>", str(pattern))
    raise AssertionError(f"unknown URL pattern type {type(pattern).__name__}: {pattern}")


def _routes(patterns=None, prefix: str = "") -> Iterator[Route]:
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        text = prefix + _pattern_text(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, text)
        elif isinstance(entry, URLPattern):
            params = tuple(re.findall(r"<(\w+)>", text))
            before = tuple(
                text[: text.index(f"<{p}>")].rstrip("/").rsplit("/", 1)[-1] for p in params
            )
            yield Route(text=text, params=params, segments_before=before)


def _is_admin(route: Route) -> bool:
    return route.text.startswith("admin/")


def _values_for(route: Route, world: TenantWorld) -> list[dict[str, str]]:
    """Every way to fill the route's parameters with A's objects (both connector kinds)."""
    objects = {
        "connectors": [str(world.source.pk), str(world.destination.pk)],
        "pipelines": [str(world.pipeline.pk)],
        "runs": [str(world.run.pk)],
        "members": [str(world.membership.pk)],
        "tokens": [str(world.api_token.pk)],
        "notifications": [str(world.notification.pk)],
        "invitations": [str(world.invitation.pk)],
        "records": ["1"],
        "move-to": [str(world.source.pk), str(world.destination.pk)],
    }
    fillings: list[dict[str, str]] = [{}]
    for param, segment in zip(route.params, route.segments_before, strict=True):
        candidates = ["json"] if param == "format" else objects.get(segment)
        if not candidates:
            pytest.fail(f"add an object for <{param}> of {route.text!r} to the sweep")
        fillings = [{**f, param: value} for f in fillings for value in candidates]
    return fillings


def _tenant_routes() -> list[Route]:
    return [r for r in _routes() if r.text not in PUBLIC_ROUTES and not _is_admin(r)]


def test_the_sweep_sees_every_kind_of_route():
    texts = {r.text for r in _routes()}
    # A guard against a walker that silently finds nothing: one route of each family.
    for expected in (
        "api/v1/connectors/<pk>/",
        "api/v1/runs/<pk>/failures/",
        "connectors/<connector_id>/",
        "pipelines/runs/<run_id>/",
        "tokens/<token_id>/revoke/",
        "ingest/<token>/",
    ):
        assert expected in texts
    stale = set(PUBLIC_ROUTES) - texts
    assert not stale, f"PUBLIC_ROUTES lists routes that no longer exist: {stale}"


def _sweep(client, routes, world, allowed, *, csv=True) -> list[str]:
    problems = []
    for route in routes:
        if not route.params:
            continue
        for values in _values_for(route, world):
            url = route.url(values)
            for method in METHODS:
                queries = ["", "?format=csv"] if method == "get" and csv else [""]
                for query in queries:
                    response = getattr(client, method)(url + query)
                    if response.status_code not in allowed:
                        problems.append(f"{method.upper()} {url}{query} → {response.status_code}")
    return problems


def _unchanged(world: TenantWorld) -> None:
    """Nothing B tried changed A's objects."""
    for obj in (world.source, world.destination, world.pipeline):
        fresh = type(obj).objects.get(pk=obj.pk)
        assert fresh.name == obj.name
    world.api_token.refresh_from_db()
    assert world.api_token.revoked_at is None
    world.invitation.refresh_from_db()
    assert world.invitation.is_pending
    assert Membership.objects.get(pk=world.membership.pk).role == world.membership.role
    run = Run.objects.get(pk=world.run.pk)
    assert (run.state, run.retries.count()) == (world.run.state, 0)
    # The ingest token was not rotated (the world's token still finds the source).
    assert source_for_ingest_token(token=world.ingest_token) is not None


@pytest.mark.reliability
def test_every_route_answers_404_to_a_session_of_another_organization(world_a, outsider_client):
    problems = _sweep(outsider_client, _tenant_routes(), world_a, OUTSIDER_OK)
    assert not problems, "cross-tenant answers other than 404/405:\n" + "\n".join(problems)
    _unchanged(world_a)


@pytest.mark.reliability
def test_every_api_route_answers_404_to_a_token_of_another_organization(world_a, api_b):
    routes = [r for r in _tenant_routes() if r.text.startswith("api/")]
    problems = _sweep(api_b, routes, world_a, OUTSIDER_OK)
    assert not problems, "cross-tenant answers other than 404/405:\n" + "\n".join(problems)
    _unchanged(world_a)


@pytest.mark.reliability
def test_every_route_refuses_an_anonymous_caller(world_a):
    problems = _sweep(APIClient(), _tenant_routes(), world_a, ANONYMOUS_OK, csv=False)
    assert not problems, "anonymous answers other than 302/401/403/405:\n" + "\n".join(problems)
    _unchanged(world_a)


def test_routes_without_an_object_show_nothing_of_another_organization(world_a, outsider_client):
    leaks = []
    for route in _tenant_routes():
        if route.params:
            continue
        response = outsider_client.get("/" + route.text)
        body = response.content.decode(errors="replace")
        leaks += [f"{route.text}: {name!r}" for name in world_a.names() if name in body]
    assert not leaks, "A's objects shown to B:\n" + "\n".join(leaks)


def test_the_admin_is_closed_to_people_who_are_not_staff(world_a, outsider_client):
    problems = []
    for route in (r for r in _routes() if _is_admin(r) and r.text not in ADMIN_SESSION_ROUTES):
        values = dict.fromkeys(route.params, "1")
        values.update(object_id=str(world_a.source.pk), app_label="connectors", url="x/", id="1")
        url = route.url({p: values[p] for p in route.params})
        response = outsider_client.get(url)
        # Not staff: the admin sends everyone to its login page (or 404s unknown URLs).
        if response.status_code not in (302, 404):
            problems.append(f"GET {url} → {response.status_code}")
        elif response.status_code == 302 and "/admin/login/" not in response["Location"]:
            problems.append(f"GET {url} → 302 to {response['Location']}")
    assert not problems, "\n".join(problems)
