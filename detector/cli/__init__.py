"""`detector` command line: a thin typer layer; each stage's commands live in their own module."""

from __future__ import annotations

import detector.yolo_env  # noqa: F401  (first: sets OMP_WAIT_POLICY before anything loads torch's OpenMP)
from enum import Enum

from synthgen.cli._common import command_group, run_cli

app = command_group(
    "detector", "Build training sets, train YOLO-tiny nanoparticle detectors, evaluate, predict and measure."
)



class Task(str, Enum):
    """--task of build-dataset and train: box labels and detectors, or outline labels and Segment models."""

    detect = "detect"
    segment = "segment"


from detector.cli import dataset_cmds, train_cmds, evaluate_cmds, export_cmds, serve_cmds  # noqa: E402,F401,I001  (register, in pipeline order)


def main() -> None:
    run_cli(app)
