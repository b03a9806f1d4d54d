"""The broker: protocol, factory, sessions, routing, retained messages, wills."""
