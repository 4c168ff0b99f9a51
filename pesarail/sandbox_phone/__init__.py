"""The simulated phone page: a person plays the customer who gets the M-Pesa prompt.

A Django app on purpose, apart from :mod:`pesarail.sandbox` (the provider simulators,
which stay Django-free WSGI). It talks to the simulator only over its HTTP control API,
as a phone would only see what the provider shows it.
"""
