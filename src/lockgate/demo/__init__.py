"""A synthetic bank support desk: labelled tickets for the `lockgate demo` command."""
