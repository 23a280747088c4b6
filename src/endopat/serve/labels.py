"""A Label Studio labeling config against the served model's classes: which control the
predictions are written to, and every label it offers mapped to a class (an unknown label is a
:class:`~endopat.serve.images.RequestError` whose message Label Studio shows)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from endopat.labels import BINARY, Labels
from endopat.serve.images import RequestError

CLASSES = tuple(BINARY.names[i] for i in BINARY.foreground)  # a binary checkpoint's one foreground class


def foreground(labels: Labels) -> tuple[str, ...]:
    """The classes a labeling config can name: the model's foreground classes."""
    return tuple(labels.names[i] for i in labels.foreground)
TOOLS = ("BrushLabels", "PolygonLabels")
MAX_CONFIG = 1_000_000


@dataclass(frozen=True)
class Target:
    """Where predictions go: the brush control and the image it labels, and the label of each class."""

    from_name: str
    to_name: str
    labels: dict[str, str]  # class -> the config's label value


def parse(config: str, classes: tuple[str, ...] = CLASSES, aliases: dict[str, str] | None = None) -> Target:
    """Read ``config`` (Label Studio's XML); ``aliases`` maps a config label to a class name
    (``--label NAME=CLASS``), the others match a class by name, case-insensitively."""
    if not isinstance(config, str) or not config.strip():
        raise RequestError(400, "no labeling config")
    if len(config) > MAX_CONFIG:
        raise RequestError(413, f"labeling config over {MAX_CONFIG} characters")
    if "<!DOCTYPE" in config or "<!ENTITY" in config:
        raise RequestError(400, "labeling config: DOCTYPE and ENTITY declarations are not read")
    try:
        root = ET.fromstring(config)
    except ET.ParseError as err:
        raise RequestError(400, f"labeling config is not valid XML ({err})") from None
    aliases = {k.lower(): v for k, v in (aliases or {}).items()}
    by_name = {c.lower().replace(" ", "_"): c for c in classes}
    brush = None
    for control in (e for e in root.iter() if e.tag in TOOLS):
        mapped = {}
        for label in control.iter("Label"):
            value = label.get("value", "")
            cls = aliases.get(value.lower()) or by_name.get(value.lower().replace(" ", "_"))
            if cls not in classes:
                raise RequestError(422, f"label '{value}' of <{control.tag} name=\"{control.get('name')}\"> is not a "
                                        f"class of the served model ({', '.join(classes)}); rename it or start the "
                                        "server with --label VALUE=CLASS")
            mapped[cls] = value
        if control.tag == "BrushLabels" and brush is None:
            brush = Target(control.get("name", ""), control.get("toName", ""), mapped)
    if brush is None:
        raise RequestError(422, "the labeling config has no <BrushLabels>: endopat predicts masks (add a "
                                "BrushLabels control for the model's classes)")
    return brush
