"""The browser pages: log-in, the consent screen (``/auth``) and the key list."""
