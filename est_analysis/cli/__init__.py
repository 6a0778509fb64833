"""The `est` command line (top of the package: nothing imports it). `main.py` holds the table
of subcommands; each subcommand has its own module; `options.py` the options they share."""
