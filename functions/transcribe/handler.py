"""OpenFaaS python3-flask handler for `transcribe`: the logic lives in homelabpi.functions."""

from homelabpi.functions import flask_handle, warm_up_in_background

warm_up_in_background("transcribe")  # models load once per container; 503 + Retry-After until then


def handle(req):
    return flask_handle("transcribe", req)
