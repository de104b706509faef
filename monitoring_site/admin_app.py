"""The admin app with Tradewatch's site as `admin.site` (kept free of model imports:
INSTALLED_APPS loads it before the app registry is ready)."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class TradewatchAdminConfig(AdminConfig):
    """django.contrib.admin whose default site is `TradewatchAdminSite`."""

    default_site = "monitoring_site.admin_site.TradewatchAdminSite"
