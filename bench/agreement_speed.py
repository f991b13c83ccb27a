"""Agreement speed: agreement_report + disagreements on 10,000 annotations from 10 annotators.

Usage: .venv/bin/python bench/agreement_speed.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator.review.agreement import agreement_report  # noqa: E402
from annotator.review.disagreements import disagreements  # noqa: E402
from tests.unit.test_agreement import synthetic_annotations  # noqa: E402

annotations, labels = synthetic_annotations(5000, 10, seed=0)
times = []
for _ in range(5):
    start = time.perf_counter()
    agreement_report(annotations, labels)
    disagreements(annotations, labels)
    times.append(time.perf_counter() - start)
print(
    f"agreement report + disagreement queue, {len(annotations):,} annotations from 10 annotators: "
    f"median {statistics.median(times):.3f} s, min {min(times):.3f} s (5 runs)"
)
