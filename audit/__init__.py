"""Audit history of configuration changes, recorded by database triggers (django-pghistory)."""
