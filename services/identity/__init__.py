"""Identity resolution: one profile per person across identifiers (docs/adr/0001)."""
