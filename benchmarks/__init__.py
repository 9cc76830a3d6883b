"""Benchmarks: commands that measure ArchCast and write their figures under ``benchmarks/results/``."""
