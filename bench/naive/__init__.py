"""A deliberately naive synchronous M-Pesa initiation view, in the style many Django
integrations use. It exists only as S1's baseline and is never shipped in the app.

What makes it naive (each on purpose):
* sync gunicorn workers (2 x cores + 1 processes), so one waiting request holds a worker;
* an OAuth token fetched from the provider on every call;
* the provider call made inside the database transaction (a connection and a
  transaction held open for the whole provider round trip);
* a plain ``httpx.post`` per call (no pooled client).

It writes to its own table (``bench_naive_payment``, created by the harness), so it
cannot disturb pesarail's tables or the checks.
"""
