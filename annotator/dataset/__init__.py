"""The training data a project exports: export (over review's resolution), cleaning, label issues, splits, datasheet."""
