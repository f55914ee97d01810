from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from osmos.tenancy.models import Organization
from osmos.tenancy.services import organization_create

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-osmos-2026"


class Command(BaseCommand):
    help = "Create the demo organization and user on first start; print how to log in."

    def handle(self, *args, **options):
        User = get_user_model()
        user = User.objects.filter(username=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(
                username=DEMO_EMAIL, email=DEMO_EMAIL, password=DEMO_PASSWORD
            )
            user.is_staff = user.is_superuser = True
            user.save()
            organization_create(name="Demo", owner=user)
            created = "Created"
        else:
            created = "Found"
        org = Organization.objects.filter(memberships__user=user).first()
        self.stdout.write(
            f"{created} the demo organization {org.name!r}.\n"
            f"  Log in at http://127.0.0.1:8000/login/ as {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
            f"  (also a superuser: the admin is at http://127.0.0.1:8000/admin/)"
        )
