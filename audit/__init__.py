"""Audit history of configuration changes, recorded by database triggers (django-pghistory).

This app holds the event tables and the middleware saying who made a change; every
app's admin shows the history through `core.audit_admin`, which reads it by object.
"""
