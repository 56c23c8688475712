from django.urls import path

from accounts import views, webhooks

urlpatterns = [
    path("login", views.login_view),
    path("logout", views.logout_view),
    path("", views.home),
    path("poll", views.poll),
    path("api/me", views.api_me),
    path("idlegate/webhook", webhooks.idlegate_webhook),
    path("idlegate/events", webhooks.events),
    path("idlegate/users", webhooks.users),
    path("diy/activity", views.diy_activity),
]
