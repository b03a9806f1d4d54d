"""An MQTT 3.1.1 and 5.0 broker on Twisted that authenticates devices with JWTs."""

__version__ = "0.1.0"
