"""Notification channels: one class per kind, registered by kind name."""
