from django.contrib.auth import views as auth_views
from django.urls import path

from osmos.tenancy import account_views, views

urlpatterns = [
    path("signup/", account_views.signup, name="signup"),
    path("signup/<str:token>/", account_views.signup_finish, name="signup_finish"),
    path("login/", account_views.login_view, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", account_views.password_change, name="password_change"),
    path("password_change/done/", account_views.password_change_done, name="password_change_done"),
    path("password_reset/", account_views.password_reset, name="password_reset"),
    path("password_reset/done/", account_views.password_reset_done, name="password_reset_done"),
    path(
        "reset/<uidb64>/<token>/",
        account_views.password_reset_confirm,
        name="password_reset_confirm",
    ),
    path("reset/done/", account_views.password_reset_complete, name="password_reset_complete"),
    path("organizations/new/", views.organization_new, name="organization_new"),
    path("organizations/switch/", views.organization_switch, name="organization_switch"),
    path("members/", views.members, name="members"),
    path("members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path(
        "invitations/<uuid:invitation_id>/resend/",
        views.invitation_resend,
        name="invitation_resend",
    ),
    path(
        "invitations/<uuid:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("join/<str:token>/", account_views.invitation_accept, name="invitation_accept"),
    path("tokens/", views.api_tokens, name="api_tokens"),
    path("tokens/<uuid:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
