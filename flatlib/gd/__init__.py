"""Published guided-diffusion checkpoints: their command-line flags (``flags``), a strict load of their weights
(``weights``) and their import as run folders (``importer``, ``python -m flatlib.gd.importer``)."""
