"""The DVC stages' commands: ``preflight``, ``runs`` (train and SWA run folders), ``pipeline`` (evaluation),
``summary`` and ``publish``."""
