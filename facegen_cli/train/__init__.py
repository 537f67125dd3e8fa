"""Training: one loop for every model family (snapshots, stats, resume, DDP)."""
