"""Pages for people: sign-up, the organization switcher, members and API tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from osmos.tenancy import selectors, services
from osmos.tenancy.forms import (
    ApiTokenForm,
    MemberAddForm,
    OrganizationForm,
    RoleForm,
    SignupForm,
)
from osmos.tenancy.middleware import SESSION_KEY
from osmos.tenancy.models import Membership


def organization_required(view):
    """A page that needs the person to act for an organization (else: create one)."""

    @login_required
    def wrapped(request, *args, **kwargs):
        if request.membership is None:
            return redirect("organization_new")
        return view(request, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def require_manager(request) -> None:
    if not request.membership.can_manage:
        raise PermissionDenied("Only owners and admins can do this.")


def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                organization_name=form.cleaned_data["organization_name"],
            )
        except services.TenancyError as error:
            form.add_error(None, str(error))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome! Your organization is ready.")
            return redirect("home")
    return render(request, "tenancy/signup.html", {"form": form})


@organization_required
def home(request):
    """The organization's start page: what exists, what to do next, the latest runs."""
    # Imported here: the tenancy app sits below the product apps and must not need them to load.
    from connectors.selectors import connector_list
    from pipelines.selectors import pipeline_list, run_list

    connectors = connector_list(organization=request.organization)
    sources = connectors.filter(direction="source")
    context = {
        "source_count": sources.count(),
        "active_source_count": sources.filter(source__state="active").count(),
        "destination_count": connectors.filter(direction="destination").count(),
        "pipeline_count": pipeline_list(organization=request.organization).count(),
        "recent_runs": run_list(organization=request.organization).select_related("pipeline")[:8],
    }
    return render(request, "tenancy/home.html", context)


@login_required
def organization_new(request):
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            org = services.organization_create(name=form.cleaned_data["name"], owner=request.user)
        except services.TenancyError as error:
            form.add_error("name", str(error))
        else:
            request.session[SESSION_KEY] = str(org.pk)
            return redirect("home")
    return render(request, "tenancy/organization_new.html", {"form": form})


@login_required
@require_POST
def organization_switch(request):
    membership = selectors.membership_for(
        user=request.user, organization_id=request.POST.get("organization")
    )
    if membership is None:
        raise Http404("No such organization.")
    request.session[SESSION_KEY] = str(membership.organization_id)
    return redirect("home")


def _member_or_404(request, membership_id) -> Membership:
    membership = (
        selectors.members_of(organization=request.organization).filter(pk=membership_id).first()
    )
    if membership is None:
        raise Http404("No such member.")
    return membership


@organization_required
def members(request):
    form = MemberAddForm(request.POST or None)
    if request.method == "POST":
        require_manager(request)
        if form.is_valid():
            try:
                services.member_add(
                    organization=request.organization,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                )
            except services.TenancyError as error:
                form.add_error("email", str(error))
            else:
                messages.success(request, f"{form.cleaned_data['email']} added.")
                return redirect("members")
    return render(
        request,
        "tenancy/members.html",
        {"form": form, "members": selectors.members_of(organization=request.organization)},
    )


@organization_required
@require_POST
def member_role(request, membership_id: int):
    require_manager(request)
    membership = _member_or_404(request, membership_id)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            services.member_set_role(
                membership=membership, role=form.cleaned_data["role"], acting=request.membership
            )
        except services.TenancyError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"{membership.user.email} is now {membership.role}.")
    else:
        messages.error(request, "Choose a valid role.")
    return redirect("members")


@organization_required
def api_tokens(request):
    form = ApiTokenForm(request.POST or None)
    issued = None
    if request.method == "POST":
        require_manager(request)
        if form.is_valid():
            issued = services.api_token_create(
                organization=request.organization,
                name=form.cleaned_data["name"],
                created_by=request.user,
            )
            form = ApiTokenForm()
    return render(
        request,
        "tenancy/api_tokens.html",
        {
            "form": form,
            "issued": issued,
            "tokens": selectors.api_tokens_of(organization=request.organization),
        },
    )


@organization_required
@require_POST
def api_token_revoke(request, token_id):
    require_manager(request)
    token = selectors.api_tokens_of(organization=request.organization).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    services.api_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api_tokens")
