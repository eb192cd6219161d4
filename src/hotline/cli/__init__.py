"""The `hotline` command line: one module per command, errors mapped to exit codes in `app`."""
