"""OpenFaaS python3-flask handler for `transcribe`: the logic lives in homelabpi.functions."""

from homelabpi.functions import flask_handle, warm_up

warm_up("transcribe")  # models load once, when the container starts


def handle(req):
    return flask_handle("transcribe", req)
