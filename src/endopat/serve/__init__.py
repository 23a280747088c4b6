"""``endopat serve``: a live model for the labeling tools. :mod:`.model` holds the served segmenter
(swapped atomically), :mod:`.images` finds a task's image, :mod:`.learning` takes annotations in
and retrains, :mod:`.app` is the Label Studio ML backend protocol as a thin FastAPI layer over
them, and :mod:`.cvat` the CVAT auto-annotation function."""
