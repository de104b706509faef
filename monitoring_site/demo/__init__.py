"""`tradewatch demo`: simulated trading systems pushing through the real HTTP API.

* `scenario`: what a simulated system is made of (what it sends at each moment, the
  steps it announces with what should fire), and a whole scenario at a pace;
* `story`: the six systems of the demo, read against the built-in trading rule pack
  (both pure: no Django, no I/O, no clock);
* `sending`: the HTTP side, through the bundled client library (`tradewatch_client`),
  one client and API key per system, as a real bot sends;
* `provisioning`: the demo's sources, keys, console channel and policy, and `--clean`;
* `watching`: which announced alert changes the database shows;
* `command`: the verb itself: the run loop and what it prints;
* `__main__`: `make demo`, the verb with the database and broker `make run` picks.
"""
