"""The HTTP API: app factory, dependencies, one module of routes per resource."""
