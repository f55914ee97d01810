from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from osmos.tenancy.services import TenancyError, organization_create


class Command(BaseCommand):
    help = "Create an organization owned by a user (created if missing); prints the slug."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)

    def handle(self, *args, name: str, owner_email: str, **options):
        User = get_user_model()
        email = owner_email.strip().lower()
        owner = User.objects.filter(email__iexact=email).first()
        if owner is None:
            owner = User.objects.create_user(username=email, email=email)
            owner.set_unusable_password()
            owner.save()
        try:
            org = organization_create(name=name, owner=owner)
        except TenancyError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(org.slug)
