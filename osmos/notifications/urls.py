from django.urls import path

from osmos.notifications import views

urlpatterns = [
    path("", views.notification_list, name="notifications"),
    path("read/", views.notification_mark_all_read, name="notifications_read"),
    path("email/", views.email_preference, name="notifications_email"),
    path("webhook/", views.webhook_save, name="notifications_webhook"),
    path("webhook/rotate/", views.webhook_rotate, name="notifications_webhook_rotate"),
]
