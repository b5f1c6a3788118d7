"""Everything Radical Pilot: a newer RP release touches this package only.

- :mod:`deeprc.rp.versions`: the releases the patches were tested on (the version gate).
- :mod:`deeprc.rp.patches`: the patches to RP's fixed costs, by purpose (idle polling, start-up,
  shutdown), and the import hook that applies them.
- :mod:`deeprc.rp.hooks`: the hooks folder (a standalone copy of the patches) for RP's own processes.
- :mod:`deeprc.rp.config`: RP's resource config from a site, the agent config, the client's environment.
- :mod:`deeprc.rp.session`: :class:`~deeprc.rp.session.Pilot`, one RP session, pilot and warm raptor worker.
- :mod:`deeprc.rp.reaping`: the processes a pilot left running, and stopping them.

Nothing is imported here: :mod:`deeprc.rp.patches` must stay importable without the rest.
"""
