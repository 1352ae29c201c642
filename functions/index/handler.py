"""OpenFaaS python3-flask handler for `index`: the logic lives in homelabpi.functions."""

from homelabpi.functions import flask_handle, warm_up_in_background

warm_up_in_background("index")  # models load once per container; 503 + Retry-After until then


def handle(req):
    return flask_handle("index", req)
