"""OpenFaaS python3-flask handler for `index`: the logic lives in homelabpi.functions."""

from homelabpi.functions import flask_handle, warm_up

warm_up("index")  # models load once, when the container starts


def handle(req):
    return flask_handle("index", req)
