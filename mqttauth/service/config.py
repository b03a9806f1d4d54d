"""Configuration errors shared by the service and the plugins."""


class ConfigError(Exception):
    """An invalid or missing setting; start-up stops with this message.

    The message names the setting and says how to fix it.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message
