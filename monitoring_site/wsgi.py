"""Django's WSGI application; the web server runs it behind monitoring_site.front."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")

application = get_wsgi_application()
