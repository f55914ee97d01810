"""Forms of the tenancy pages: sign-in, sign-up and passwords, organizations, members,
invitations and API tokens. They check the shape of the input; who may do what is decided by
``services``/``invitations``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm

from osmos.tenancy.mail_limits import mail_allowed
from osmos.tenancy.models import Role, TokenRole

logger = logging.getLogger(__name__)


class EmailAuthenticationForm(AuthenticationForm):
    """Django's sign-in form; the username is the e-mail address."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        field = self.fields["username"]
        field.label = "Email"
        field.widget = forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})

    def clean_username(self) -> str:
        return self.cleaned_data["username"].strip().lower()


class LimitedPasswordResetForm(PasswordResetForm):
    """Django's reset form, mailing one address at most
    ``PASSWORD_RESET_MAILS_PER_ADDRESS_PER_HOUR`` times an hour. Every request for the address
    counts, whether it has an account or not, and over the limit nothing is sent while the
    page answers as always: the form reveals no account and cannot flood an inbox."""

    def get_users(self, email):
        per_hour = settings.PASSWORD_RESET_MAILS_PER_ADDRESS_PER_HOUR
        if not mail_allowed(kind="password-reset", email=email, per_hour=per_hour):
            logger.warning("Password reset mail not sent: hourly limit of the address reached")
            return iter(())
        return super().get_users(email)


class NewPasswordForm(forms.Form):
    """A new password for the person at ``email``, checked by the configured validators
    (which compare it with the address)."""

    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
        max_length=4096,
    )

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            user = get_user_model()(username=self.email, email=self.email)
            try:
                password_validation.validate_password(password, user)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class SignupForm(forms.Form):
    """Step one: the address. Whatever it is, the answer is "check your inbox"."""

    email = forms.EmailField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )


class SignupFinishForm(NewPasswordForm):
    """Step two, from the mailed link: a password and the first organization."""

    organization_name = forms.CharField(max_length=200, label="Organization name")


class InvitationSignupForm(NewPasswordForm):
    """Joining by invitation without an account: a password for the invited address."""


def _role_choices(roles: list[str]) -> list[tuple[str, str]]:
    return [(value, label) for value, label in Role.choices if value in roles]


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, roles: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(roles)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Token name")
    role = forms.ChoiceField(choices=TokenRole.choices, initial=TokenRole.MEMBER, required=False)
    expires_on = forms.DateField(
        required=False,
        label="Expires on (optional)",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The token stops working at the start of this day (UTC).",
    )

    def __init__(self, *args, roles: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [
            (value, label) for value, label in TokenRole.choices if value in roles
        ]

    def clean_role(self) -> str:
        return self.cleaned_data.get("role") or TokenRole.MEMBER

    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        return datetime.combine(day, time.min, tzinfo=UTC)


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=200, label="Organization name")
