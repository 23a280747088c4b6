"""Nuclio handler for CVAT's serverless auto-annotation (the body: {"image": base64}; the answer:
a list of {"label", "type": "mask", "mask": cvat_sdk.masks.encode_mask's runs + box, "confidence"},
as CVAT's own mask functions answer). The model is endopat.serve.cvat's function, loaded once per
worker. Not run against a live CVAT here (no Docker engine on the development machines); the
function itself is checked with cvat-sdk's own types in tests/test_serve_cvat.py."""

import base64
import io
import json

from PIL import Image


def init_context(context):
    from endopat.serve.cvat import EndopatFunction

    context.user_data.function = EndopatFunction("/opt/nuclio/best.pt")


def handler(context, event):
    from cvat_sdk.masks import encode_mask

    from endopat.serve.labels import CLASSES

    body = event.body if isinstance(event.body, dict) else json.loads(event.body)
    image = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    results = [{"label": CLASSES[k], "type": "mask", "confidence": "1.0", "mask": encode_mask(mask)}
               for k, mask in enumerate(context.user_data.function.masks(image)) if mask.any()]
    return context.Response(body=json.dumps(results), headers={}, content_type="application/json", status_code=200)
