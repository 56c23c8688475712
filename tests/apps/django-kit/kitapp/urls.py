from django.urls import include, path

from accounts import views
from kitprobe import probes

urlpatterns = [
    path("login", views.login_view),
    path("logout", views.logout_view),
    path("", views.home),
    path("poll", views.poll),
    path("api/me", views.api_me),
    path("idlegate/webhook", include("idlegate_django.urls")),  # the kit
    path("idlegate/events", probes.events),
    path("idlegate/users", probes.users),
    path("app/logouts", probes.logouts),
]
