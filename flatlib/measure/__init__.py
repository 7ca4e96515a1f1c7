"""Measurements of trained models: sampling (``sample``), FID (``metrics``), quantization (``quant``), flatness
(``flatness``), exposure bias (``exposure``), intervals over seeds (``stats``), and the schemas of the files they
are written to (``records``)."""
