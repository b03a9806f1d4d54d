"""The sans-IO MQTT 3.1.1 and 5.0 codec: bytes in, packets out, and back.

Nothing in this package imports Twisted or does I/O, so every rule here can be
tested with plain byte strings.
"""
