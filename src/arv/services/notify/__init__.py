"""Notifications: an outbox of messages to companies, delivered by e-mail and Telegram exactly once."""
