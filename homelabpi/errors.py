"""Errors that carry an HTTP status, so handlers and the CLI report them the same way."""

from __future__ import annotations


class HomeLabPiError(Exception):
    """Base class: `status` is the HTTP status a handler answers with."""

    status = 500


class BadInput(HomeLabPiError):
    """The caller sent something we cannot use (4xx): retrying will not help."""

    status = 400


class Unauthorized(HomeLabPiError):
    status = 401


class NotFound(HomeLabPiError):
    status = 404


class TooLarge(BadInput):
    status = 413


class Unavailable(HomeLabPiError):
    """A dependency (store, gateway, model) is down: retrying later may help."""

    status = 503
