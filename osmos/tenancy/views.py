"""Pages for people: the organization switcher, members, invitations and API tokens; and the
helpers every app's pages use (``organization_required``, ``require_manager``,
``delete_confirmed``).

Sign-up, sign-in and passwords are in ``account_views.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from osmos.errors import Conflict
from osmos.tenancy import invitations, selectors, services
from osmos.tenancy.forms import ApiTokenForm, InviteForm, OrganizationForm, RoleForm
from osmos.tenancy.middleware import SESSION_KEY
from osmos.tenancy.models import ApiToken, Invitation, Membership, TokenRole
from osmos.tenancy.scope import tenant_object_or_404


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


def delete_confirmed(
    request,
    delete: Callable[[], object],
    *,
    refusal: type[Conflict],
    deleted: str,
    back_to: str,
    done_to: str,
):
    """The confirmed POST of a delete page: ``delete()``, then ``done_to`` (a URL) with the
    message ``deleted``; a ``refusal`` (still in use, a run active) goes ``back_to`` with its
    reason instead."""
    try:
        delete()
    except refusal as error:
        messages.error(request, error.detail)
        return redirect(back_to)
    messages.success(request, deleted)
    return redirect(done_to)


def base_url(request) -> str:
    """The absolute base of links we mail (``PUBLIC_BASE_URL``, else this request's)."""
    return settings.PUBLIC_BASE_URL or request.build_absolute_uri("/").rstrip("/")


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
    """Act for another of the person's organizations; ``next`` (a path here) is where to go."""
    membership = selectors.membership_for(
        user=request.user, organization_id=request.POST.get("organization")
    )
    if membership is None:
        raise Http404("No such organization.")
    request.session[SESSION_KEY] = str(membership.organization_id)
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(next_url)
    return redirect("home")


@organization_required
def members(request):
    """The members and pending invitations; owners and admins invite here (POST)."""
    roles = invitations.invitation_roles_for(request.membership)
    form = InviteForm(request.POST or None, roles=roles)
    if request.method == "POST":
        require_manager(request)
        if form.is_valid():
            try:
                invitations.invitation_create(
                    organization=request.organization,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    actor=request.membership,
                    invited_by=request.user,
                    base_url=base_url(request),
                )
            except services.NotAllowed as error:
                raise PermissionDenied(str(error)) from None
            except services.TenancyError as error:
                form.add_error("email", str(error))
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("members")
    return render(
        request,
        "tenancy/members.html",
        {
            "form": form,
            "members": selectors.members_of(organization=request.organization),
            "invitations": invitations.pending_invitations(organization=request.organization)
            .select_related("invited_by")
            .order_by("email"),
            "grantable_roles": services.grantable_roles(request.membership.role),
            "owner_count": selectors.owner_count(organization=request.organization),
        },
    )


def _refused(request, error: services.TenancyError) -> None:
    if isinstance(error, services.NotAllowed):
        raise PermissionDenied(str(error))
    messages.error(request, str(error))


def _attempt(request, change: Callable[[], object], *, success: str) -> None:
    """Make ``change``: ``success`` as a message when it is made; a refusal as an error
    message (PermissionDenied when the actor's role does not allow it)."""
    try:
        change()
    except services.TenancyError as error:
        _refused(request, error)
    else:
        messages.success(request, success)


@organization_required
@require_POST
def member_role(request, membership_id: int):
    require_manager(request)
    membership = tenant_object_or_404(
        Membership.objects.select_related("user"), request.organization, pk=membership_id
    )
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("members")
    role = form.cleaned_data["role"]
    _attempt(
        request,
        lambda: services.member_set_role(
            membership=membership, role=role, actor=request.membership
        ),
        success=f"{membership.user.email} is now {role}.",
    )
    return redirect("members")


@organization_required
@require_POST
def member_remove(request, membership_id: int):
    membership = tenant_object_or_404(
        Membership.objects.select_related("user"), request.organization, pk=membership_id
    )
    if membership.pk != request.membership.pk:
        require_manager(request)
    try:
        services.member_remove(membership=membership, actor=request.membership)
    except services.TenancyError as error:
        _refused(request, error)
        return redirect("members")
    if membership.pk == request.membership.pk:
        request.session.pop(SESSION_KEY, None)
        messages.success(request, f"You left {request.organization.name}.")
        return redirect("home")
    messages.success(request, f"{membership.user.email} was removed.")
    return redirect("members")


def _change_invitation(
    request, invitation_id, change: Callable[[Invitation], object], *, success: str
):
    """A manager's change of a pending invitation of this organization, then the members
    page; ``success`` may name the invitation's ``{email}``."""
    require_manager(request)
    invitation = tenant_object_or_404(Invitation, request.organization, pk=invitation_id)
    _attempt(request, lambda: change(invitation), success=success.format(email=invitation.email))
    return redirect("members")


@organization_required
@require_POST
def invitation_resend(request, invitation_id):
    return _change_invitation(
        request,
        invitation_id,
        lambda invitation: invitations.invitation_resend(
            invitation=invitation, actor=request.membership, base_url=base_url(request)
        ),
        success="Invitation sent again to {email}.",
    )


@organization_required
@require_POST
def invitation_revoke(request, invitation_id):
    return _change_invitation(
        request,
        invitation_id,
        lambda invitation: invitations.invitation_revoke(
            invitation=invitation, actor=request.membership
        ),
        success="Invitation of {email} revoked.",
    )


@organization_required
def api_tokens(request):
    roles = [r for r in services.grantable_roles(request.membership.role) if r in TokenRole.values]
    form = ApiTokenForm(request.POST or None, roles=roles)
    issued = None
    if request.method == "POST":
        require_manager(request)
        if form.is_valid():
            try:
                issued = services.api_token_create(
                    organization=request.organization,
                    name=form.cleaned_data["name"],
                    role=form.cleaned_data["role"],
                    expires_at=form.expires_at(),
                    created_by=request.user,
                    actor=request.membership,
                )
            except services.NotAllowed as error:
                raise PermissionDenied(str(error)) from None
            except services.TenancyError as error:
                form.add_error(None, str(error))
            else:
                form = ApiTokenForm(roles=roles)
    tokens = list(selectors.api_tokens_of(organization=request.organization))
    for token in tokens:
        token.effective_role = services.api_token_effective_role(token=token)
    return render(
        request, "tenancy/api_tokens.html", {"form": form, "issued": issued, "tokens": tokens}
    )


@organization_required
@require_POST
def api_token_revoke(request, token_id):
    require_manager(request)
    token = tenant_object_or_404(ApiToken, request.organization, pk=token_id)
    services.api_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api_tokens")
