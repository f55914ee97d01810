"""Pages of a person's account: sign-up, accepting an invitation, sign-in, passwords.

Sign-up is two steps so that it never tells anyone whether an address has an account: the
address first (always answered "check your inbox"), then the mailed link.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy

from osmos.tenancy import invitations, services, signin
from osmos.tenancy.forms import (
    EmailAuthenticationForm,
    InvitationSignupForm,
    LimitedPasswordResetForm,
    SignupFinishForm,
    SignupForm,
)
from osmos.tenancy.middleware import SESSION_KEY
from osmos.tenancy.views import base_url

_BACKEND = "osmos.tenancy.signin.ThrottledModelBackend"


def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invitations.signup_request(email=form.cleaned_data["email"], base_url=base_url(request))
        except services.TenancyError as error:
            form.add_error(None, str(error))
        else:
            return render(
                request, "tenancy/signup_sent.html", {"email": form.cleaned_data["email"]}
            )
    return render(request, "tenancy/signup.html", {"form": form})


def signup_finish(request, token: str):
    email = invitations.signup_email(token=token)
    if email is None:
        return render(request, "tenancy/link_invalid.html", {"what": "sign-up link"}, status=404)
    form = SignupFinishForm(request.POST or None, email=email)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup(
                email=email,
                password=form.cleaned_data["password"],
                organization_name=form.cleaned_data["organization_name"],
            )
        except services.TenancyError as error:
            form.add_error(None, str(error))
        else:
            login(request, user, backend=_BACKEND)
            messages.success(request, "Welcome! Your organization is ready.")
            return redirect("home")
    return render(request, "tenancy/signup_finish.html", {"form": form, "email": email})


def _joined(request, membership) -> object:
    request.session[SESSION_KEY] = str(membership.organization_id)
    messages.success(request, f"Welcome to {membership.organization.name}!")
    return redirect("home")


def invitation_accept(request, token: str):
    """Signed in: one click joins. Otherwise: create the account (the link proves the
    address) or sign in and come back."""
    invitation = invitations.invitation_for_secret(secret=token)
    if invitation is None:
        return render(request, "tenancy/link_invalid.html", {"what": "invitation"}, status=404)
    form = None
    if not request.user.is_authenticated:
        form = InvitationSignupForm(request.POST or None, email=invitation.email)
    if request.method == "POST":
        try:
            if request.user.is_authenticated:
                membership = invitations.invitation_accept(secret=token, user=request.user)
                return _joined(request, membership)
            if form.is_valid():
                user = invitations.invitation_accept_as_new_user(
                    secret=token, password=form.cleaned_data["password"]
                )
                login(request, user, backend=_BACKEND)
                return _joined(request, user.memberships.get(organization=invitation.organization))
        except services.TenancyError as error:
            if form is None:
                messages.error(request, str(error))
                return redirect("home")
            form.add_error(None, str(error))
    return render(
        request,
        "tenancy/invitation_accept.html",
        {
            "invitation": invitation,
            "form": form,
            "login_url": reverse("login") + "?next=" + request.path,
        },
    )


class LoginView(auth_views.LoginView):
    template_name = "tenancy/login.html"
    authentication_form = EmailAuthenticationForm


login_view = signin.guard(LoginView.as_view())

password_change = auth_views.PasswordChangeView.as_view(
    success_url=reverse_lazy("password_change_done")
)
password_change_done = auth_views.PasswordChangeDoneView.as_view()
password_reset = auth_views.PasswordResetView.as_view(
    form_class=LimitedPasswordResetForm, success_url=reverse_lazy("password_reset_done")
)
password_reset_done = auth_views.PasswordResetDoneView.as_view()
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    success_url=reverse_lazy("password_reset_complete")
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view()
