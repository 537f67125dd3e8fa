"""The studio's HTTP routes, a module per page or area; each module's ROUTES list is what `create_app` mounts."""
