"""Pricing: what running a circuit costs, in one place.

- `book`: the price book (`data/pricebook.json`), each catalog target's `CostModel`
  (`cost_model(target)`); loading it checks that it prices every catalog target exactly once.
- `formulas`: a circuit's gate counts and a `CostModel` applied to a task (`price`).
- `devices`: what a circuit costs on a target's device, its run time estimated from the
  device's calibration where the supplier reported none (`device_price`).
- `costs`: what a job is charged (`Cost`, finished or at submit) and what an estimate shows.
- `listing`: the suppliers' providers and targets with their prices.

Pricing reads the catalog, the circuits and the emulation's device model (`shared.suppliers`);
the jobs, the network and the ledger call it. It imports none of them.
"""
