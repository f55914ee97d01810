from django.core.management.base import BaseCommand, CommandError

from osmos.tenancy.models import Organization, TokenRole
from osmos.tenancy.services import TenancyError, api_token_create


class Command(BaseCommand):
    help = "Create an API token for an organization; prints the token alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--role",
            choices=TokenRole.values,
            default=TokenRole.ADMIN,
            help="the token's role (no creator: it keeps this role)",
        )

    def handle(self, *args, org: str, name: str, role: str, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization with slug {org!r}.")
        try:
            issued = api_token_create(organization=organization, name=name, role=role)
        except TenancyError as error:
            raise CommandError(str(error)) from None
        self.stderr.write("Shown this once; store it now:")
        self.stdout.write(issued.secret)
