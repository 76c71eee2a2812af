"""CampusConnect benchmarks: every figure measured beside its anchor in the same run."""
