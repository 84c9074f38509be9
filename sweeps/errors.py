"""Errors caused by the user's input: reported as one clear line and a non-zero exit."""


class UserError(Exception):
    """Bad input (config value, dataset file, device request); the message says what and where."""


class ConfigError(UserError, ValueError):
    """A config value is invalid; the message names the key, the value and the valid ones."""


class DatasetError(UserError):
    """A dataset is missing or malformed; the message names the file and what is wrong."""
