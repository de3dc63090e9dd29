"""One module per external API. Connectors take an httpx client; they never touch the store."""
