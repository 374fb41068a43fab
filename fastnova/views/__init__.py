"""Write-time rendering: canonical records to gated JSON pieces (see fastnova.store.layout)."""
