"""OpenFaaS python3-flask handler for `answer`: the logic lives in homelabpi.functions."""

from homelabpi.functions import flask_handle, warm_up

warm_up("answer")  # models load once, when the container starts


def handle(req):
    return flask_handle("answer", req)
