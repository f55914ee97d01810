"""Notifications about a destination's health (SPEC §5.2, §5.5).

``failing`` and ``paused`` each open an incident of the destination (a destination failing
for hours is one notification); ``healthy`` closes whichever is open with one "healthy
again" notification, and says nothing when nothing was open.
"""

from __future__ import annotations

import uuid

from osmos.notifications.models import Event, SubjectType
from osmos.notifications.services import incident_close, incident_open, notify


def destination_health_notify(
    *, organization_id: uuid.UUID, connector_id: uuid.UUID, name: str, state: str, detail: str = ""
) -> None:
    """Tell people that the destination entered ``state`` (healthy, failing or paused)."""
    subject = {"subject_type": SubjectType.CONNECTOR, "subject_id": connector_id}
    failing_key = f"destination:{connector_id}:failing"
    paused_key = f"destination:{connector_id}:paused"
    if state == "failing":
        incident_open(
            organization_id=organization_id,
            key=failing_key,
            event=Event.DESTINATION_FAILING,
            message=f"Destination “{name}” is failing: {detail}".rstrip(": "),
            **subject,
        )
    elif state == "paused":
        incident_open(
            organization_id=organization_id,
            key=paused_key,
            event=Event.DESTINATION_PAUSED,
            message=f"Destination “{name}” was paused: nothing is sent until someone resumes "
            f"it. {detail}".rstrip(),
            **subject,
        )
    elif state == "healthy":
        closed = [
            incident_close(organization_id=organization_id, key=key)
            for key in (failing_key, paused_key)
        ]
        if any(closed):
            notify(
                organization_id=organization_id,
                event=Event.DESTINATION_HEALTHY,
                message=f"Destination “{name}” is healthy again: waiting runs resume.",
                incident=next(i for i in closed if i is not None),
                **subject,
            )
