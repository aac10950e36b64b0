"""Rolling out: immutable content-hashed releases, promotion gates, shadow runs and canaries."""
