"""The project's one error type for user mistakes."""


class UserError(Exception):
    """A mistake in the user's input (config, flags, results folder): one line that names the
    file, the key and what is allowed. The CLI prints it and exits with code 2; bugs still raise
    normally."""
