from django.urls import path

from osmos.notifications import views

urlpatterns = [
    path("", views.notification_list, name="notifications"),
    path("read/", views.notification_mark_all_read, name="notifications_read"),
    path("email/", views.email_preference, name="notifications_email"),
]
