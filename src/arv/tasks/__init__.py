"""Celery: the app with its queues, routes and Beat schedule, and the thin task modules."""
