"""Text in, records out: normalization, segmentation, ingestion, seed files, near-duplicates."""
