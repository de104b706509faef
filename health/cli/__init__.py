"""Verbs of `python manage.py tradewatch` that belong to the health app."""
