"""HTTP and trigger blueprints: parse -> call a service -> map. No logic here."""
