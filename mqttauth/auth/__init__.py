"""Authentication and authorization: the interfaces and the built-in plugins."""
