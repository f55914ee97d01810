"""The destination form's body template and the live preview of the first request (SPEC §3.2)."""

from __future__ import annotations

import pytest

from tests.support.delivery import make_destination

pytestmark = pytest.mark.django_db

FORM = {
    "name": "CRM",
    "url": "http://127.0.0.1:9/x",
    "method": "POST",
    "write_mode": "batch",
    "batch_size": "20",
    "timeout_seconds": "30",
    "max_concurrency": "8",
    "response_format": "none",
}


def test_the_form_refuses_invalid_json_and_a_templated_host_next_to_their_fields(owner_page, org_a):
    destination = make_destination(org_a, "http://127.0.0.1:9/x")
    page = f"/connectors/{destination.pk}/edit/"
    assert 'name="body_template"' in owner_page.get(page).content.decode()
    response = owner_page.post(page, {**FORM, "body_template": '{"events": "{{records}}",}'})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="body-template-errors"' in html
    assert "The body template is not valid JSON." in html
    assert "{&quot;events&quot;: &quot;{{records}}&quot;,}" in html  # shown back as typed
    response = owner_page.post(
        page, {**FORM, "url": "http://{{email}}.example.com/x", "write_mode": "single"}
    )
    assert response.status_code == 400
    assert (
        "The scheme, host and port of the URL cannot hold placeholders" in response.content.decode()
    )


def test_a_saved_template_round_trips_through_the_form_and_shows_on_the_page(owner_page, org_a):
    destination = make_destination(org_a, "http://127.0.0.1:9/x")
    page = f"/connectors/{destination.pk}/edit/"
    template = '{"events": "{{records}}", "source": "osmos"}'
    assert owner_page.post(page, {**FORM, "body_template": template}).status_code == 302
    destination.destination.refresh_from_db()
    assert destination.destination.body_template == {"events": "{{records}}", "source": "osmos"}
    assert "&quot;source&quot;: &quot;osmos&quot;" in owner_page.get(page).content.decode()
    assert (
        "&quot;events&quot;: &quot;{{records}}&quot;"
        in owner_page.get(f"/connectors/{destination.pk}/").content.decode()
    )


def test_the_live_preview_renders_the_unsaved_url_and_envelope_with_masked_headers(
    owner_page, org_a
):
    destination = make_destination(org_a, "http://127.0.0.1:9/x")
    preview = owner_page.get(
        f"/connectors/{destination.pk}/preview/",
        {
            "url": "http://127.0.0.1:9/users/{{email}}?id={{id}}",
            "method": "PUT",
            "write_mode": "single",
            "body_template": '{"data": "{{record}}"}',
        },
    )
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "PUT http://127.0.0.1:9/users/example?id=1" in html
    assert "{&quot;data&quot;:{&quot;id&quot;:1" in html
    assert "Authorization: ••••" in html
    assert "sink-secret" not in html
    refused = owner_page.get(
        f"/connectors/{destination.pk}/preview/",
        {"write_mode": "batch", "body_template": '{"a": "{{records}}", "b": "{{records}}"}'},
    )
    assert "exactly once" in refused.content.decode()


def test_the_preview_of_another_organizations_destination_is_a_404(outsider_page, org_a):
    destination = make_destination(org_a, "http://127.0.0.1:9/x")
    assert outsider_page.get(f"/connectors/{destination.pk}/preview/").status_code == 404
