"""The broker: Twisted protocol and factory, sessions, routing, retained messages and wills."""
