"""The one exception type users catch."""


class StyleTransferError(ValueError):
    """Bad input or a bad checkpoint: the message is one line a person can act on."""
