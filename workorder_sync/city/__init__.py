"""The city side of work-order sync: how the district talks to the city 12345
platform, and a simulator of that platform.

No national interface specification is public, so the city is an adapter
(:class:`~workorder_sync.city.base.CityAdapter`) with one implementation per
protocol style:

* :mod:`.rest` -- our reference protocol: HTTPS + JSON, every request signed
  with HMAC-SHA256 (:mod:`.signing`), an ``Idempotency-Key`` on each message,
  status events pushed back to the district by a signed webhook;
* :mod:`.polling` -- the style found in real per-city integrations: one
  endpoint per action, a static session token, no idempotency keys (the
  adapter looks an order up before creating it), status read by polling a
  paged list by time range behind a persisted cursor.

:mod:`.simulator` is an aiohttp application that speaks both protocols, sends
status events on a schedule and injects faults on demand; the contract tests
run both adapters against it.
"""
