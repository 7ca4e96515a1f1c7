"""Training: data sets (``data``), SAM (``sam``), EMA and SWA (``averaging``), the trainer and its run folders
(``train``) and reading a run folder's checkpoints (``checkpoints``)."""
