"""Errors caused by the user's input: reported as one clear line and a non-zero exit."""


class UserError(Exception):
    """Bad input (config value, dataset file, device request); the message says what and where."""


class ConfigError(UserError, ValueError):
    """A config value is invalid; the message names the key, the value and the valid ones."""


class DatasetError(UserError):
    """A dataset is missing or malformed; the message names the file and what is wrong."""


def one_line(err: BaseException) -> str:
    """Hydra's messages span lines ("Could not override 'x'.\nTo append ..."): join them,
    less the config search path it appends to a missing option."""
    from omegaconf.errors import OmegaConfBaseException

    message = str(err).split("\nConfig search path:")[0]
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause).splitlines()[0] not in text:
        text += f" ({str(cause).splitlines()[0].strip()})"
    return text
