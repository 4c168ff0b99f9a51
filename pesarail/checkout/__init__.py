"""Hosted checkout: checkout sessions (API), the hosted payment page ``/pay/<id>/`` and
its live status. Interface only: money moves through :mod:`pesarail.payments`."""
