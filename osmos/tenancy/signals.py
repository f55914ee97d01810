"""A member who leaves an organization takes their powers with them, however they leave.

``pre_delete`` (not ``post_delete``): when a user is deleted, Django sets the tokens'
``created_by`` to NULL before it deletes the memberships, and the creator would be lost.
"""

from __future__ import annotations

from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils import timezone

from osmos.tenancy.models import Invitation, Membership
from osmos.tenancy.services import api_tokens_revoke_of_creator


@receiver(pre_delete, sender=Membership, dispatch_uid="osmos.tenancy.membership_removed")
def _revoke_what_the_member_issued(sender, instance: Membership, **kwargs) -> None:
    api_tokens_revoke_of_creator(organization_id=instance.organization_id, user_id=instance.user_id)
    Invitation.objects.filter(
        organization_id=instance.organization_id,
        invited_by_id=instance.user_id,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
    ).update(revoked_at=timezone.now())
