"""Payment providers: encrypted per-merchant provider accounts, the provider contract and
one adapter module per provider.

Layout (read ``docs/providers.md`` first):

* :mod:`pesarail.providers.base` -- the contract: frozen dataclasses that cross the
  boundary (``ChargeRequest``, ``ChargeStarted``, ``ProviderEvent``, ``CredentialCheck``),
  the exceptions (``ProviderError``, ``ProviderUnavailable``, ``ProviderTimeout``,
  ``ProviderAuthError``) and the ``PaymentProvider`` Protocol.
* :mod:`pesarail.providers.registry` -- ``PROVIDERS`` (code -> class) and ``get_provider``.
* :mod:`pesarail.providers.mpesa_ke` -- Safaricom Daraja (M-Pesa Kenya).
* :mod:`pesarail.providers.models` -- ``ProviderAccount`` (credentials encrypted at rest)
  and ``ProviderToken`` (one shared access token per credential set).
* :mod:`pesarail.providers.crypto` -- MultiFernet encryption and encrypted model fields.
* :mod:`pesarail.providers.tokens` -- the single-flight token store.
* :mod:`pesarail.providers.services` -- create / update / deactivate / test accounts.

Deliberate deviation from design.md section 3, which put provider accounts in
``tenants/`` and adapters in ``payments/providers/``: credentials, the token store and
the adapters that use them change together and are tested together, so they live in one
app (label ``providers``). ``payments`` imports from here; nothing here imports
``payments``.
"""
