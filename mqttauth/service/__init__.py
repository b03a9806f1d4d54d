"""The ``twistd mqttauth`` service: options, configuration and listeners."""
