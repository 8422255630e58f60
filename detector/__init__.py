"""detector: build training sets, train YOLO-tiny nanoparticle detectors, evaluate, predict, measure."""

__version__ = "0.1.0"
