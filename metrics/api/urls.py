from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("whoami", views.WhoAmIView.as_view(), name="whoami"),
]
