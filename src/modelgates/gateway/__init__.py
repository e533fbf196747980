"""The OpenAI-compatible gateway: upstream configuration and the proxying handlers."""
