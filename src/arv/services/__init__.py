"""The work itself, callable without Celery: jobs, markers, uploads, expiry, rotation, notifications."""
