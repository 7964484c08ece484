"""One module per subcommand; `rnnkit.cli.command_modules` finds them here."""
