"""The annotation loop's two ends: the files ``endopat suggest`` writes for annotation tools
(:mod:`endopat.annotation.write`), and what comes back from them, read into a labeled folder
(:mod:`endopat.annotation.read`, one module per export format, named in :data:`FORMATS`).
"""

from endopat.annotation import coco, cvat, cvat_mask, label_studio
from endopat.annotation.write import (
                                      LABEL,
                                      LABEL_STUDIO_CONFIG,
                                      brush_rle,
                                      cvat_mask_rle,
                                      cvat_xml,
                                      label_studio_tasks,
                                      write_cvat,
                                      write_label_studio,
)

# every export format endopat imports: one module each (NAME, TOOL, detect, read); detection in this order
FORMATS = {m.NAME: m for m in (cvat, cvat_mask, coco, label_studio)}

__all__ = ["FORMATS", "LABEL", "LABEL_STUDIO_CONFIG", "brush_rle", "cvat_mask_rle", "cvat_xml", "label_studio_tasks",
           "write_cvat", "write_label_studio"]
