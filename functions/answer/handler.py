"""OpenFaaS python3-flask handler for `answer`: the logic lives in homelabpi.functions."""

from homelabpi.functions import flask_handle, warm_up_in_background

warm_up_in_background("answer")  # models load once per container; 503 + Retry-After until then


def handle(req):
    return flask_handle("answer", req)
