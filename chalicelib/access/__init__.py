"""Access: API keys, user tokens and rate limits; who may call which route, for which user."""
