"""Architecture families of the whole-network dataset: one module per family (see ``training.netgen.registry``)."""
