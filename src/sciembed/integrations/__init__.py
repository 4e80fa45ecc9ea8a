"""Glue to libraries people already use (each needs its optional extra): ``sentence_transformers``
(extra ``st``) and ``mteb`` (extra ``mteb``). Import the submodule you need."""
