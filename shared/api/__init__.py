"""HTTP, queue and timer functions as blueprints: parse, call a service, map. No logic here."""
