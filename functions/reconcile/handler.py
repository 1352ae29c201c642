"""OpenFaaS python3-flask handler for `reconcile`: the logic lives in homelabpi.reconcile."""

from homelabpi.functions import flask_handle


def handle(req):
    return flask_handle("reconcile", req)
