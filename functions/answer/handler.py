"""OpenFaaS python3-flask handler for `answer`: the logic lives in homelabpi.functions."""

from homelabpi.functions import flask_handle


def handle(req):
    return flask_handle("answer", req)
