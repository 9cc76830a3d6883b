"""ArchCast offline side (torch): fusion transformer, augmentation sampling, losses, trainer, evaluation, export."""
