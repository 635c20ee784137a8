"""The recommendation API's library, one folder per subsystem (README's code map says what each owns)."""
