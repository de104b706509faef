"""`tradewatch demo`: simulated trading systems pushing through the real HTTP API.

* `scenario`: what each simulated system sends at each moment and what should fire
  (pure: no Django, no I/O, no clock);
* `sending`: the HTTP side, through the bundled client library (`tradewatch_client`),
  one client and API key per system, as a real bot sends;
* `provisioning`: the demo's sources, keys, console channel and policy, and `--clean`;
* `watching`: which announced alert changes the database shows;
* `command`: the verb itself: the run loop and what it prints.
"""
