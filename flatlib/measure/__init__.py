"""Measurements of trained models: sampling (``sample``), FID (``metrics``), quantization (``quant``), flatness
(``flatness``), exposure bias (``exposure``) and intervals over seeds (``stats``)."""
