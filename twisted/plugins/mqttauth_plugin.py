"""The ``twistd mqttauth`` command: a service maker found by twistd's plugin search.

This module only names the module that holds the options and makeService,
so that listing twistd's commands does not import the broker.
"""

from twisted.application.service import ServiceMaker

mqttauth = ServiceMaker(
    "mqttauth",
    "mqttauth.service.tap",
    "An MQTT 3.1.1 and 5.0 broker with JWT, password-file and ACL plugins.",
    "mqttauth",
)
