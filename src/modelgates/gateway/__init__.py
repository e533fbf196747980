"""The metered gateway: the one metered-request path and the pure pieces it stands on."""
