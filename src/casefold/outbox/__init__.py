"""The outbox: effects on other systems, recorded with the change that causes them, delivered
in the background exactly once per idempotency key."""
