"""Family modules: one file per architecture family (see ``training.netgen.registry``)."""
