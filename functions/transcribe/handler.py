"""OpenFaaS python3-flask handler for `transcribe`: the logic lives in homelabpi.functions."""

from homelabpi.functions import flask_handle


def handle(req):
    return flask_handle("transcribe", req)
