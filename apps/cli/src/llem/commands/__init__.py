"""The ``llem`` subcommands, one module per group. Each imports heavy packages lazily."""
